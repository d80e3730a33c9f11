import { formatHlc } from '@walsync/db/server';
import { type Health, Tokens, type WalsyncServer, loadConfig } from '@walsync/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ServerProcess, TEST_JWT_SECRET, type TestDatabase, postgresTargets, seedWorkspaces, startDatabase, startServer, startServerProcess, waitFor } from '@walsync/test-support';
import { BareClient } from './support/bare-client';

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

  it('count the writes of both doors: POST /changes and a write over the socket', async () => {
    const applied = async () => Number(/^walsync_write_changes_total\{status="applied"\} (\d+)$/m.exec(await (await fetch(`${server.url}/metrics`)).text())?.[1] ?? 0);
    const batches = async () => Number(/^walsync_write_batch_seconds_count (\d+)$/m.exec(await (await fetch(`${server.url}/metrics`)).text())?.[1] ?? 0);
    const [alice] = await db.query<{ id: string }>(`SELECT id FROM app_user WHERE email = 'alice@demo.test'`);
    const [project] = await db.query<{ id: string; workspace_id: string }>(`SELECT id, workspace_id FROM project WHERE name = 'Launch'`);
    const token = await new Tokens(TEST_JWT_SECRET).issue(alice!.id);
    const change = () => ({
      changeId: crypto.randomUUID(),
      table: 'task',
      op: 'insert',
      pk: { id: crypto.randomUUID() },
      data: { workspace_id: project!.workspace_id, project_id: project!.id, title: 'metered' },
      hlc: formatHlc({ wallMs: Date.now(), counter: 0, node: 'metered-client' }),
    });
    const [before, beforeBatches] = [await applied(), await batches()];

    const http = await fetch(`${server.url}/changes`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ clientId: 'metered-client', changes: [change()] }),
    });
    expect(http.status).toBe(200);
    expect(await applied()).toBe(before + 1);

    const socket = await BareClient.connect(server.url);
    try {
      socket.hello({ token, clientId: 'metered-client' });
      await socket.next('snapshot_end');
      socket.send({ type: 'write', requestId: 'r1', changes: [change(), change()] });
      const answer = await socket.next('write_result');
      expect(answer.results.map((result: { status: string }) => result.status)).toEqual(['applied', 'applied']);
      expect(await applied()).toBe(before + 3);
      expect(await batches()).toBe(beforeBatches + 2);
      // A heartbeat is answered at once.
      socket.send({ type: 'ping' });
      await socket.next('pong');
    } finally {
      socket.close();
    }
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
