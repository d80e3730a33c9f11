import { type Health, type WalsyncServer, loadConfig } from '@walsync/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ServerProcess, type TestDatabase, postgresTargets, seedWorkspaces, startDatabase, startServer, startServerProcess, waitFor } from '@walsync/test-support';

describe.each(postgresTargets())('GET /health and GET /metrics ($name)', (target) => {
  let db: TestDatabase;
  let server: WalsyncServer;
  let follower: ServerProcess | undefined;
  beforeAll(async () => {
    db = await startDatabase(target);
    server = await startServer(db.url);
  });
  afterAll(async () => {
    await follower?.kill();
    await server?.stop();
    await db?.dispose();
  });

  it('report the leader, the slot, what was captured and how far behind it is', async () => {
    await seedWorkspaces(db);
    await waitFor('the seed to be captured', async () => (await db.query(`SELECT count(*)::int AS n FROM change_history`))[0]!.n === 7);
    const health = (await (await fetch(`${server.url}/health`)).json()) as Health;
    expect(health).toMatchObject({
      status: 'ok',
      role: 'leader',
      slot: { name: 'walsync', exists: true, active: true, confirmedLsn: expect.stringMatching(/^[0-9A-F]+\/[0-9A-F]+$/) },
      replication: { lagBytes: expect.any(Number), lagSeconds: expect.any(Number), lastCapturedAt: expect.any(String) },
      changeHistory: { bytes: expect.any(Number) },
      clients: 0,
    });
    expect(health.replication.lagBytes).toBeGreaterThanOrEqual(0);

    follower = await startServerProcess(db.url);
    const fromFollower = (await follower.health()) as unknown as Health;
    expect(fromFollower).toMatchObject({ role: 'follower', slot: { active: true }, replication: { lastCapturedLsn: health.replication.lastCapturedLsn } });
  });

  it('expose Prometheus metrics', async () => {
    const response = await fetch(`${server.url}/metrics`);
    expect(response.headers.get('content-type')).toMatch(/^text\/plain/);
    const text = await response.text();
    expect(text).toMatch(/^walsync_changes_captured_total 7$/m);
    expect(text).toMatch(/^walsync_replication_leader 1$/m);
    expect(text).toMatch(/^walsync_replication_lag_bytes \d+$/m);
    expect(text).toMatch(/^walsync_capture_batch_seconds_count [1-9]\d*$/m);
  });
});

describe('server configuration', () => {
  it('uses the development secret only outside production, and says so', () => {
    expect(loadConfig({})).toMatchObject({ usingDevSecret: true, port: 3000, slotName: 'walsync' });
    expect(() => loadConfig({ NODE_ENV: 'production' })).toThrow(/WALSYNC_JWT_SECRET must be set when NODE_ENV=production/);
    expect(loadConfig({ NODE_ENV: 'production', WALSYNC_JWT_SECRET: 's'.repeat(32) })).toMatchObject({ usingDevSecret: false });
  });

  it('names the variable that is wrong', () => {
    expect(() => loadConfig({ PORT: 'eighty' })).toThrow(/Invalid configuration: PORT/);
    expect(() => loadConfig({ WALSYNC_JWT_SECRET: 'short' })).toThrow(/WALSYNC_JWT_SECRET must be at least 16 characters/);
    expect(() => loadConfig({ WALSYNC_SLOT: 'Bad-Slot' })).toThrow(/WALSYNC_SLOT/);
    expect(() => loadConfig({ WALSYNC_MAX_CLOCK_SKEW_MS: '-5' })).toThrow(/WALSYNC_MAX_CLOCK_SKEW_MS/);
  });
});
