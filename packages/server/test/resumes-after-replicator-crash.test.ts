import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ServerProcess, type TestDatabase, postgresTargets, seedWorkspaces, startDatabase, startServerProcess, waitFor } from '@walsync/test-support';

const TRANSACTIONS = 200;
const ROWS_PER_TRANSACTION = 100;
const TOTAL = TRANSACTIONS * ROWS_PER_TRANSACTION;

describe.each(postgresTargets())('a replicator killed mid-stream ($name)', (target) => {
  let db: TestDatabase;
  const servers: ServerProcess[] = [];
  beforeAll(async () => {
    db = await startDatabase(target);
  });
  afterAll(async () => {
    for (const server of servers) await server.kill().catch(() => undefined);
    await db?.dispose();
  });

  it(`resumes from the slot: every one of ${TOTAL} changes is in change_history exactly once`, async () => {
    const { workspaces, projects } = await seedWorkspaces(db);
    servers.push(await startServerProcess(db.url));
    const captured = async () =>
      Number((await db.query(`SELECT count(*) AS n FROM change_history WHERE table_name = 'task'`))[0]!.n);

    // A steady stream of 100-row transactions from another connection, while the server is killed and restarted.
    const stream = (async () => {
      const writer = await db.pool.connect();
      try {
        for (let i = 0; i < TRANSACTIONS; i++) {
          await writer.query(
            `INSERT INTO task (workspace_id, project_id, title) SELECT $1, $2, 'stream-' || $3 || '-' || g FROM generate_series(1, ${ROWS_PER_TRANSACTION}) g`,
            [workspaces.shared, projects.launch, i],
          );
        }
      } finally {
        writer.release();
      }
    })();

    await waitFor('capture to be under way', async () => (await captured()) >= TOTAL / 10, 30_000);
    await servers[0]!.kill();
    const atCrash = await captured();
    expect(atCrash).toBeLessThan(TOTAL);
    servers.push(await startServerProcess(db.url));
    await stream;
    await waitFor(`all ${TOTAL} changes to be captured`, async () => (await captured()) >= TOTAL, 60_000);

    const [summary] = await db.query(`
      SELECT count(*)::int AS changes, count(DISTINCT data->>'id')::int AS rows,
             (SELECT count(*)::int FROM task WHERE title LIKE 'stream-%') AS source_rows
        FROM change_history WHERE table_name = 'task' AND operation = 'insert' AND data->>'title' LIKE 'stream-%'`);
    expect(summary).toEqual({ changes: TOTAL, rows: TOTAL, source_rows: TOTAL });
    const missing = await db.query(
      `SELECT t.id FROM task t LEFT JOIN change_history h ON h.table_name = 'task' AND h.data->>'id' = t.id::text WHERE h.id IS NULL AND t.title LIKE 'stream-%' LIMIT 5`,
    );
    expect(missing).toEqual([]);
    // Each transaction's rows stayed together, in order, under one commit LSN.
    const [shape] = await db.query(`
      SELECT count(DISTINCT commit_lsn)::int AS transactions, max(op_index)::int AS last_op
        FROM change_history WHERE table_name = 'task' AND data->>'title' LIKE 'stream-%'`);
    expect(shape).toEqual({ transactions: TRANSACTIONS, last_op: ROWS_PER_TRANSACTION - 1 });
  });
});
