import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ServerProcess, type TestDatabase, postgresTargets, seedWorkspaces, startDatabase, startServerProcess, waitFor } from '@walsync/test-support';

describe.each(postgresTargets())('two server processes on one database ($name)', (target) => {
  let db: TestDatabase;
  let servers: ServerProcess[] = [];
  beforeAll(async () => {
    db = await startDatabase(target);
  });
  afterAll(async () => {
    for (const server of servers) await server.kill().catch(() => undefined);
    await db?.dispose();
  });

  it('elect one leader; when it is killed the other takes over within 5 s and captures the rest with no gap', async () => {
    const { workspaces } = await seedWorkspaces(db);
    servers = [await startServerProcess(db.url), await startServerProcess(db.url)];
    const roles = async () => Promise.all(servers.map(async (server) => (await server.health()).role));
    expect((await roles()).sort()).toEqual(['follower', 'leader']);
    const leader = servers[(await roles()).indexOf('leader')]!;
    const follower = servers.find((server) => server !== leader)!;

    let written = 0;
    let writing = true;
    const writes = (async () => {
      while (writing) {
        await db.query(`INSERT INTO project (workspace_id, name) VALUES ($1, $2)`, [workspaces.shared, `failover-${written}`]);
        written += 1;
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    })();
    await waitFor('some writes', () => written > 50);

    await leader.kill();
    const killedAt = Date.now();
    await waitFor('the follower to take over', async () => (await follower.health()).role === 'leader', 5_000);
    const takeoverMs = Date.now() - killedAt;
    expect(takeoverMs).toBeLessThan(5_000);
    await waitFor('more writes after the takeover', () => written > 150, 10_000);
    writing = false;
    await writes;

    await waitFor('every project to be captured', async () => {
      const [row] = await db.query(`SELECT count(*)::int AS n FROM change_history WHERE table_name = 'project' AND data->>'name' LIKE 'failover-%'`);
      return row!.n >= written;
    });
    const [summary] = await db.query(
      `SELECT count(*)::int AS changes, count(DISTINCT data->>'name')::int AS names FROM change_history WHERE table_name = 'project' AND data->>'name' LIKE 'failover-%'`,
    );
    expect(summary).toEqual({ changes: written, names: written });
  });

  it('starts a server while open transactions hold the history and a synced table, without queueing for their locks', async () => {
    // A snapshot reading the history and a write in progress, both open while another server starts:
    // a start that changed the tables anyway (ALTER TABLE … IF NOT EXISTS, CREATE OR REPLACE TRIGGER)
    // queued behind them, and capture and every session queued behind it.
    servers.push(await startServerProcess(db.url));
    const open = new pg.Client({ connectionString: db.url });
    await open.connect();
    try {
      await open.query('BEGIN');
      await open.query('SELECT count(*) FROM change_history');
      await open.query(`UPDATE task SET title = title WHERE false`);
      const started = Date.now();
      const server = await startServerProcess(db.url);
      servers.push(server);
      expect(Date.now() - started).toBeLessThan(15_000);
      const [waiting] = await db.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND application_name LIKE 'walsync%'`);
      expect(waiting).toEqual({ n: 0 });
    } finally {
      await open.query('ROLLBACK').catch(() => undefined);
      await open.end();
    }
  });

  it('stops cleanly on SIGTERM: the process exits 0 and the slot is released', async () => {
    for (const other of servers) await other.kill();
    const server = await startServerProcess(db.url);
    servers.push(server);
    await waitFor('this process to lead and stream', async () => (await server.health()).role === 'leader' && (await db.query(`SELECT active FROM pg_replication_slots WHERE slot_name = 'walsync'`))[0]!.active);
    await server.stop();
    expect(server.child.exitCode).toBe(0);
    expect((await db.query(`SELECT active FROM pg_replication_slots WHERE slot_name = 'walsync'`))[0]!.active).toBe(false);
  });
});
