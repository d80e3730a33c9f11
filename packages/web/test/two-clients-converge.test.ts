import { Tokens, type WalsyncServer } from '@walsync/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_JWT_SECRET, type TestDatabase, postgresTargets, seedWorkspaces, startDatabase, startServer, waitFor } from '@walsync/test-support';
import { type SyncClient, createSyncClient } from '@walsync/web';

describe('two Node clients and the server', () => {
  let db: TestDatabase;
  let server: WalsyncServer;
  let seed: Awaited<ReturnType<typeof seedWorkspaces>>;
  let alice: SyncClient;
  let bob: SyncClient;

  const tasks = async (source: { query: (sql: string) => Promise<{ rows: any[] }> } | TestDatabase) => {
    const sql = `SELECT id::text, title, status, deleted_at IS NOT NULL AS deleted, version FROM task ORDER BY id`;
    return 'pool' in source ? await source.query(sql) : (await source.query(sql)).rows;
  };

  beforeAll(async () => {
    db = await startDatabase(postgresTargets()[0]!);
    server = await startServer(db.url);
    seed = await seedWorkspaces(db);
    await db.query(`INSERT INTO task (workspace_id, project_id, title) VALUES ($1, $2, 'from the server')`, [seed.workspaces.shared, seed.projects.launch]);
    const tokens = new Tokens(TEST_JWT_SECRET);
    alice = await createSyncClient({ url: server.url, token: await tokens.issue(seed.users.alice), dataDir: 'memory://' });
    bob = await createSyncClient({ url: server.url, token: await tokens.issue(seed.users.bob), dataDir: 'memory://' });
    await Promise.all([alice.ready, bob.ready]);
  });
  afterAll(async () => {
    await alice?.close();
    await bob?.close();
    await server?.stop();
    await db?.dispose();
  });

  it('hydrates both clients with the server rows', async () => {
    expect(await tasks(alice.db)).toEqual(await tasks(db));
    expect(await tasks(bob.db)).toEqual(await tasks(db));
  });

  it('converges on concurrent updates and deletes of the same rows and on external SQL writes', async () => {
    const insert = `INSERT INTO task (workspace_id, project_id, title) VALUES ($1, $2, $3) RETURNING id`;
    const [first] = (await alice.db.query<{ id: string }>(insert, [seed.workspaces.shared, seed.projects.launch, 'alice writes'])).rows;
    await alice.flush();
    await waitFor('bob to receive it', async () => (await tasks(bob.db)).some((task) => task.id === first!.id));

    // Both edit the same row while the other's edit is in flight; one deletes another row.
    await Promise.all([
      alice.db.query(`UPDATE task SET title = 'alice edit', status = 'doing' WHERE id = $1`, [first!.id]),
      bob.db.query(`UPDATE task SET title = 'bob edit' WHERE id = $1`, [first!.id]),
      bob.db.query(`DELETE FROM task WHERE title = 'from the server'`),
    ]);
    await db.query(`UPDATE task SET status = 'done' WHERE id = $1`, [first!.id]);
    await Promise.all([alice.flush(), bob.flush()]);

    const server = await tasks(db);
    await waitFor('both clients to equal the server', async () => {
      const now = await tasks(db);
      const [a, b] = [await tasks(alice.db), await tasks(bob.db)];
      return JSON.stringify(a) === JSON.stringify(now) && JSON.stringify(b) === JSON.stringify(now);
    });
    expect(server.find((task) => task.title === 'from the server')).toMatchObject({ deleted: true });
    expect(await alice.db.query(`SELECT count(*)::int AS n FROM walsync_outbox`)).toMatchObject({ rows: [{ n: 0 }] });
  });
});
