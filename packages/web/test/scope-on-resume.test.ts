import path from 'node:path';
import { Tokens } from '@walsync/server';
import { type SyncFixture, TEST_JWT_SECRET, startSyncFixture, waitFor } from '@walsync/test-support';
import { createSyncClient } from '@walsync/web';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * Scope is computed, never remembered: a client that was offline while its user lost or regained a
 * workspace holds exactly the user's scope once it resumes.
 */
describe('a replica resumed after its membership changed offline', () => {
  let fixture: SyncFixture;

  beforeAll(async () => {
    fixture = await startSyncFixture('scope-on-resume');
  });
  afterAll(async () => {
    await fixture?.dispose();
  });

  it('drops a workspace lost while offline, and hydrates it exactly when regained while offline', async () => {
    const { db, seed, url } = fixture;
    const token = await new Tokens(TEST_JWT_SECRET).issue(seed.users.bob);
    const dataDir = path.join(fixture.scratch.dir, 'bob');
    const shared = seed.workspaces.shared;
    const task = (title: string) => db.query<{ id: string }>(`INSERT INTO task (workspace_id, project_id, title) VALUES ($1, $2, $3) RETURNING id`, [shared, seed.projects.launch, title]);
    const [kept] = await task('kept');
    const [doomed] = await task('deleted while bob is out');
    const open = () => createSyncClient({ url, token, dataDir });
    const sharedTasks = async (client: Awaited<ReturnType<typeof open>>) =>
      (await client.db.query<{ title: string }>(`SELECT title FROM task WHERE workspace_id = $1 AND deleted_at IS NULL ORDER BY title`, [shared])).rows.map((row) => row.title);

    let bob = await open();
    await bob.ready;
    await waitFor('bob holds the shared tasks', async () => (await sharedTasks(bob)).includes('deleted while bob is out'));
    await bob.close();

    // Offline: bob leaves the workspace, and the workspace moves on without him.
    await db.query(`DELETE FROM workspace_member WHERE workspace_id = $1 AND user_id = $2`, [shared, seed.users.bob]);
    await db.query(`DELETE FROM task WHERE id = $1`, [doomed!.id]);
    await task('written while bob is out');

    bob = await open();
    try {
      await waitFor('the lost workspace to go', async () => (await bob.db.query(`SELECT 1 FROM workspace WHERE id = $1`, [shared])).rows.length === 0);
      expect(await sharedTasks(bob)).toEqual([]);
      expect((await bob.db.query(`SELECT 1 FROM project WHERE workspace_id = $1`, [shared])).rows).toEqual([]);
      await waitFor('up to date', () => bob.status === 'up-to-date');
    } finally {
      await bob.close();
    }

    // Offline again: bob is re-added; a task he had held is deleted meanwhile.
    await db.query(`INSERT INTO workspace_member (workspace_id, user_id, role) VALUES ($1, $2, 'member')`, [shared, seed.users.bob]);
    await db.query(`DELETE FROM task WHERE id = $1`, [kept!.id]);
    bob = await open();
    try {
      const server = (await db.query<{ title: string }>(`SELECT title FROM task WHERE workspace_id = $1 AND deleted_at IS NULL ORDER BY title`, [shared])).map((row) => row.title);
      await waitFor('the regained workspace, exactly', async () => JSON.stringify(await sharedTasks(bob)) === JSON.stringify(server));
      expect(server).toContain('written while bob is out');
      expect(server).not.toContain('kept');
    } finally {
      await bob.close();
    }
  });

  it('drops an unsent write to a workspace lost while offline, and reports it as refused', async () => {
    const { db, seed, url } = fixture;
    const shared = seed.workspaces.shared;
    const token = await new Tokens(TEST_JWT_SECRET).issue(seed.users.alice);
    const dataDir = path.join(fixture.scratch.dir, 'alice-offline');
    await db.query(`INSERT INTO workspace_member (workspace_id, user_id, role) VALUES ($1, $2, 'member') ON CONFLICT DO NOTHING`, [seed.workspaces.other, seed.users.alice]);
    let alice = await createSyncClient({ url, token, dataDir });
    await alice.ready;
    await waitFor('up to date', () => alice.status === 'up-to-date');
    // Offline (the server is down): alice writes in both workspaces.
    await fixture.stopServer();
    const insert = (workspace: string, project: string, title: string) =>
      alice.db.query<{ id: string }>(`INSERT INTO task (workspace_id, project_id, title) VALUES ($1, $2, $3) RETURNING id`, [workspace, project, title]);
    const [lost] = (await insert(shared, seed.projects.launch, 'written into a workspace alice loses')).rows;
    await insert(seed.workspaces.other, seed.projects.secret, 'written into a workspace alice keeps');
    await alice.close();
    await db.query(`DELETE FROM workspace_member WHERE workspace_id = $1 AND user_id = $2`, [shared, seed.users.alice]);
    await fixture.startServer();

    alice = await createSyncClient({ url, token, dataDir });
    const conflicts: Array<{ table: string; pk: Record<string, unknown>; result: { status: string } & Record<string, unknown> }> = [];
    alice.on('conflict', (conflict) => conflicts.push(conflict as never));
    try {
      await waitFor('the kept write to reach the server', async () => (await db.query(`SELECT 1 FROM task WHERE title = 'written into a workspace alice keeps'`)).length === 1);
      await waitFor('the refusal to be reported', () => conflicts.length === 1);
      expect(conflicts[0]).toMatchObject({ table: 'task', pk: { id: lost!.id }, result: { status: 'error', code: 'forbidden_scope' } });
      await waitFor('nothing left to send', async () => (await alice.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM walsync_outbox`)).rows[0]!.n === 0);
      expect((await alice.db.query(`SELECT 1 FROM task WHERE workspace_id = $1`, [shared])).rows).toEqual([]);
      expect(await db.query(`SELECT 1 FROM task WHERE title = 'written into a workspace alice loses'`)).toEqual([]);
    } finally {
      await alice.close();
    }
  });

  it('keeps a session whose token expires months ahead (no timer overflow)', async () => {
    const farAhead = Math.floor(Date.now() / 1000) + 90 * 24 * 3600;
    const client = await createSyncClient({ url: fixture.url, token: await new Tokens(TEST_JWT_SECRET).issue(fixture.seed.users.alice, farAhead), dataDir: 'memory://' });
    const errors: Error[] = [];
    client.on('error', (error) => errors.push(error));
    try {
      await client.ready;
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      expect(errors).toEqual([]);
      expect(client.status).toBe('up-to-date');
    } finally {
      await client.close();
    }
  });
});
