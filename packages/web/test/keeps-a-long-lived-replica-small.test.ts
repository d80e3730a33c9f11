import { Tokens, type WalsyncServer } from '@walsync/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_JWT_SECRET, type TestDatabase, postgresTargets, seedWorkspaces, startDatabase, startServer, waitFor } from '@walsync/test-support';
import { ReplicaUpkeep, type SyncClient, createSyncClient } from '@walsync/web';
import { localReplica } from './support/local-replica';

/**
 * PGlite runs no autovacuum and no checkpointer: a replica whose rows the stream and the app update
 * again and again kept every old row version, and its tables grew without end (500 tasks updated
 * 50,000 times: 0.1 MB of heap became 23 MB), and so did its WAL. The client vacuums and analyzes
 * its own tables when they pass Postgres' thresholds, once the replica is quiet, and checkpoints.
 */
describe('a long-lived replica', () => {
  let db: TestDatabase;
  let server: WalsyncServer;
  let seed: Awaited<ReturnType<typeof seedWorkspaces>>;
  let client: SyncClient;
  const errors: Error[] = [];

  /** The replica's own view of a table: its heap's size, its dead rows, how often it was vacuumed and analyzed. */
  const table = async (name: string) =>
    (
      await client.db.query<{ heap: number; dead: number; vacuums: number; analyzes: number }>(
        `SELECT pg_relation_size(relid)::int AS heap, n_dead_tup::int AS dead, vacuum_count::int AS vacuums, analyze_count::int AS analyzes
           FROM pg_stat_user_tables WHERE relname = $1`,
        [name],
      )
    ).rows[0]!;
  /** Every task of the workspace updated by SQL on the server, `commits` times, until the replica has the last. */
  const updateAll = async (commits: number, tag: string) => {
    for (let i = 0; i < commits; i++) await db.query(`UPDATE task SET title = $2 || ' ' || id WHERE workspace_id = $1`, [seed.workspaces.shared, `${tag}.${i}`]);
    const last = `${tag}.${commits - 1} %`;
    await waitFor('the replica to have the last update', async () => (await client.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM task WHERE title LIKE $1`, [last])).rows[0]!.n === 500);
  };
  /** Postgres' own threshold for a table of `live` rows, by the replica's settings (the defaults: 50 + 20 %). */
  const vacuumed = async (name: string, live: number) => waitFor(`${name} to be vacuumed`, async () => (await table(name)).dead <= 50 + 0.2 * live && (await table(name)), 10_000);

  beforeAll(async () => {
    db = await startDatabase(postgresTargets()[0]!);
    server = await startServer(db.url);
    seed = await seedWorkspaces(db);
    await db.query(`INSERT INTO task (workspace_id, project_id, title) SELECT $1, $2, 'seed ' || g FROM generate_series(1, 500) g`, [seed.workspaces.shared, seed.projects.launch]);
    client = await createSyncClient({ url: server.url, token: await new Tokens(TEST_JWT_SECRET).issue(seed.users.alice), dataDir: 'memory://' });
    client.on('error', (error) => errors.push(error));
    await client.ready;
  });
  afterAll(async () => {
    await client?.close();
    await server?.stop();
    await db?.dispose();
  });

  it('analyzes the tables a snapshot filled, once the replica is quiet', async () => {
    await waitFor('task to be analyzed', async () => (await table('task')).analyzes > 0, 10_000);
    const { rows } = await client.db.query<{ reltuples: number }>(`SELECT reltuples::int AS reltuples FROM pg_class WHERE relname = 'task'`);
    expect(rows[0]!.reltuples).toBe(500);
  });

  it('reclaims the row versions the stream replaced, and reuses their room: a second burst of updates does not grow the table', async () => {
    await updateAll(20, 'first');
    const first = await vacuumed('task', 500);
    expect(first.vacuums).toBeGreaterThan(0);
    await updateAll(20, 'second');
    const second = await vacuumed('task', 500);
    // Without a vacuum the heap held every version: the second 10,000 updates doubled it.
    expect(second.heap).toBeLessThanOrEqual(first.heap * 1.25);
    expect(second.vacuums).toBeGreaterThan(first.vacuums);
  });

  it('reclaims the outbox rows of answered local writes', async () => {
    const { rows } = await client.db.query<{ id: string }>(`SELECT id FROM task ORDER BY id LIMIT 1`);
    const before = await table('walsync_outbox');
    for (let i = 0; i < 300; i++) {
      await client.db.query(`UPDATE task SET title = $2 WHERE id = $1`, [rows[0]!.id, `local ${i}`]);
      if (i % 50 === 49) await client.flush();
    }
    await client.flush();
    await waitFor('the outbox to be vacuumed', async () => (await table('walsync_outbox')).vacuums > before.vacuums, 10_000);
    expect((await table('walsync_outbox')).dead).toBeLessThanOrEqual(50);
    expect(errors).toEqual([]);
  });
});

describe('the replica upkeep', () => {
  type Replica = Awaited<ReturnType<typeof localReplica>>;
  /** `work` with a ReplicaUpkeep over a fresh local replica; it must report no failure; both are closed afterwards. */
  const withUpkeep = async (work: (replica: Replica & { upkeep: ReplicaUpkeep }) => Promise<void>) => {
    const replica = await localReplica();
    const failures: Error[] = [];
    const upkeep = new ReplicaUpkeep(replica.db, (error) => failures.push(error));
    try {
      await work({ ...replica, upkeep });
      expect(failures).toEqual([]);
    } finally {
      await upkeep.close();
      await replica.db.close();
    }
  };
  const vacuums = async ({ db }: Replica, table: string) =>
    (await db.query<{ n: number }>(`SELECT vacuum_count::int AS n FROM pg_stat_user_tables WHERE relname = $1`, [table])).rows[0]!.n;

  it('waits out a transaction the app opened by hand, without an error, and vacuums after it', () =>
    withUpkeep(async (replica) => {
      const { db, workspace, project, upkeep } = replica;
      await db.query(`INSERT INTO task (workspace_id, project_id, title) SELECT $1, $2, 'row ' || g FROM generate_series(1, 300) g`, [workspace, project]);
      await db.exec(`UPDATE task SET title = title || '!'`);
      const dead = async () => (await db.query<{ n: number }>(`SELECT n_dead_tup::int AS n FROM pg_stat_user_tables WHERE relname = 'task'`)).rows[0]!.n;
      await db.query('SELECT pg_stat_force_next_flush()');
      expect(await dead()).toBe(300);
      await db.exec('BEGIN');
      await upkeep.look();
      await db.exec('COMMIT');
      expect(await vacuums(replica, 'task')).toBe(0);
      await upkeep.look();
      expect(await vacuums(replica, 'task')).toBe(1);
    }));

  it("leaves alone a table whose autovacuum the app turned off, as Postgres' autovacuum would", () =>
    withUpkeep(async (replica) => {
      const { db, upkeep } = replica;
      await db.exec(`CREATE TABLE kept (id int PRIMARY KEY, v text) WITH (autovacuum_enabled = false); CREATE TABLE swept (id int PRIMARY KEY, v text)`);
      for (const table of ['kept', 'swept']) {
        await db.exec(`INSERT INTO ${table} SELECT g, 'a' FROM generate_series(1, 300) g; UPDATE ${table} SET v = 'b'`);
      }
      await upkeep.look();
      expect([await vacuums(replica, 'kept'), await vacuums(replica, 'swept')]).toEqual([0, 1]);
      // Its own threshold, lower than the replica's: vacuumed after fewer dead rows.
      await db.exec(`ALTER TABLE kept SET (autovacuum_enabled = true, autovacuum_vacuum_threshold = 5, autovacuum_vacuum_scale_factor = 0); UPDATE kept SET v = 'c' WHERE id <= 10`);
      await db.exec(`UPDATE swept SET v = 'c' WHERE id <= 10`);
      await upkeep.look();
      expect([await vacuums(replica, 'kept'), await vacuums(replica, 'swept')]).toEqual([1, 1]);
    }));

  it("keeps the WAL to a few segments while the replica writes far more (PGlite's single backend never checkpoints by itself)", () =>
    withUpkeep(async ({ db, upkeep }) => {
      const lsn = async () => (await db.query<{ lsn: string }>(`SELECT pg_current_wal_insert_lsn()::text AS lsn`)).rows[0]!.lsn;
      const walFiles = async () => (await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_ls_waldir() WHERE name ~ '^[0-9A-F]{24}$'`)).rows[0]!.n;
      // A table of the app's own (no capture): 500 rows updated 5,000 times over, about 200 MB of WAL, looked after every 100 updates.
      await db.exec(`CREATE TABLE churn (id int PRIMARY KEY, title text); INSERT INTO churn SELECT g, repeat('x', 200) FROM generate_series(1, 500) g`);
      const start = await lsn();
      for (let i = 0; i < 5_000; i++) {
        await db.query(`UPDATE churn SET title = $1`, [`update ${i} ${'y'.repeat(200)}`]);
        if (i % 100 === 99) await upkeep.look();
      }
      const { rows } = await db.query<{ written: string }>(`SELECT (pg_current_wal_insert_lsn() - $1::pg_lsn)::text AS written`, [start]);
      expect(Number(rows[0]!.written)).toBeGreaterThan(150 * 1024 * 1024);
      // Without checkpoints every 16 MB segment written stays: more than nine here.
      expect(await walFiles()).toBeLessThanOrEqual(6);
    }));
});
