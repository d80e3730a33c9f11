import { randomUUID } from 'node:crypto';
import { type ChangeResult, formatHlc } from '@walsync/db/server';
import { Tokens, type WalsyncServer } from '@walsync/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_JWT_SECRET, type TestDatabase, postgresTargets, seedWorkspaces, startDatabase, startServer } from '@walsync/test-support';

const CLIENT = 'grows';
const GROWN_BY = 5_000;
let wall = Date.now();

/**
 * A write reads the rows it touches and the rows it references by their keys. It must keep doing so
 * by index once the tables have grown: a write that scanned the whole `task` table (a plan made
 * while it was small, or a key compared as text) got slower with every row, for every user.
 */
describe.each(postgresTargets())('writes read by index as tables grow ($name)', (target) => {
  let db: TestDatabase;
  let server: WalsyncServer;
  let seed: Awaited<ReturnType<typeof seedWorkspaces>>;
  let token: string;
  let stopped = false;

  const write = async (changes: Array<{ table: string; op: 'insert' | 'update'; pk: { id: string }; data: Record<string, unknown> }>) => {
    const response = await fetch(`${server.url}/changes`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ clientId: CLIENT, changes: changes.map((change) => ({ changeId: randomUUID(), hlc: formatHlc({ wallMs: (wall += 1), counter: 0, node: CLIENT }), ...change })) }),
    });
    expect(response.status).toBe(200);
    const { results } = (await response.json()) as { results: ChangeResult[] };
    expect(results.map((result) => result.status)).toEqual(changes.map(() => 'applied'));
  };
  /** One request each, as an app's writes come: a task, an edit of it, a comment on it. */
  const writeRound = async (count: number) => {
    for (let i = 0; i < count; i++) {
      const id = randomUUID();
      await write([{ table: 'task', op: 'insert', pk: { id }, data: { workspace_id: seed.workspaces.shared, project_id: seed.projects.launch, title: `task ${i}` } }]);
      await write([{ table: 'task', op: 'update', pk: { id }, data: { title: `task ${i}, edited` } }]);
      await write([{ table: 'comment', op: 'insert', pk: { id: randomUUID() }, data: { workspace_id: seed.workspaces.shared, task_id: id, author_id: seed.users.alice, body: 'on it' } }]);
    }
  };
  /**
   * Rows of `task` read by sequential scans, once the server stopped: a backend reports its counts
   * when it exits (an idle one may hold them for 10 s).
   */
  const taskRowsScannedAfterStop = async () => {
    stopped = true;
    await server.stop();
    const read = async () => Number((await db.query<{ n: string }>(`SELECT seq_tup_read AS n FROM pg_stat_user_tables WHERE relname = 'task'`))[0]!.n);
    while ((await db.query(`SELECT 1 FROM pg_stat_activity WHERE application_name LIKE 'walsync%'`)).length > 0) await new Promise((resolve) => setTimeout(resolve, 50));
    await new Promise((resolve) => setTimeout(resolve, 500));
    return read();
  };

  beforeAll(async () => {
    db = await startDatabase(target);
    // No ANALYZE while the test runs: one would replan every statement and hide a plan made for a small table.
    await db.query(`ALTER TABLE task SET (autovacuum_enabled = off)`);
    server = await startServer(db.url);
    seed = await seedWorkspaces(db);
    token = await new Tokens(TEST_JWT_SECRET).issue(seed.users.alice);
  });
  afterAll(async () => {
    if (!stopped) await server?.stop();
    await db?.dispose();
  });

  it(`reads the task a write touches or names by its key after the table grew by ${GROWN_BY.toLocaleString('en')} rows`, async () => {
    // Enough writes of each shape on a small table for Postgres to settle on a plan for it.
    await writeRound(8);
    await db.query(`INSERT INTO task (workspace_id, project_id, title) SELECT $1, $2, 'grown ' || g FROM generate_series(1, ${GROWN_BY}) g`, [seed.workspaces.shared, seed.projects.launch]);
    await writeRound(8);
    // 48 writes, 24 of them after the table grew; one scan of the grown table reads 5,000 rows.
    expect(await taskRowsScannedAfterStop()).toBeLessThan(GROWN_BY);
  });
});
