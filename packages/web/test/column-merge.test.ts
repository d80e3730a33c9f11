import path from 'node:path';
import { freePort } from '@walsync/db/server';
import { Tokens } from '@walsync/server';
import { type SyncFixture, TEST_JWT_SECRET, startSyncFixture, waitFor } from '@walsync/test-support';
import { type SyncClient, createSyncClient } from '@walsync/web';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * Column-level merge with real clients: one person edits a card's status on a train (offline), another
 * renames it meanwhile; both edits survive on the server and on both replicas.
 */
describe('concurrent edits of different columns', () => {
  let fixture: SyncFixture;
  let alice: SyncClient;
  let bobToken: string;
  const task = async (client: SyncClient, id: string) =>
    (await client.db.query<{ title: string; status: string; deleted: boolean }>(`SELECT title, status::text, deleted_at IS NOT NULL AS deleted FROM task WHERE id = $1`, [id])).rows[0];
  const serverTask = async (id: string) =>
    (await fixture.db.query<{ title: string; status: string; deleted: boolean }>(`SELECT title, status::text, deleted_at IS NOT NULL AS deleted FROM task WHERE id = $1`, [id]))[0];

  /** bob's replica, written while it cannot reach the server (a port nobody listens on), then reopened online. */
  async function bobOffline(write: (bob: SyncClient) => Promise<void>): Promise<string> {
    const dataDir = path.join(fixture.scratch.dir, `bob-${Math.random().toString(36).slice(2)}`);
    const online = await createSyncClient({ url: fixture.url, token: bobToken, dataDir });
    await online.ready;
    await online.close();
    const offline = await createSyncClient({ url: `http://127.0.0.1:${await freePort()}`, token: bobToken, dataDir });
    await offline.ready;
    await write(offline);
    await offline.close();
    return dataDir;
  }

  beforeAll(async () => {
    fixture = await startSyncFixture('column-merge');
    const tokens = new Tokens(TEST_JWT_SECRET);
    bobToken = await tokens.issue(fixture.seed.users.bob);
    alice = await createSyncClient({ url: fixture.url, token: fixture.token, dataDir: 'memory://' });
    await alice.ready;
  });
  afterAll(async () => {
    await alice?.close();
    await fixture?.dispose();
  });

  const newTask = async (title: string) => {
    const [row] = await fixture.db.query<{ id: string }>(`INSERT INTO task (workspace_id, project_id, title) VALUES ($1, $2, $3) RETURNING id`, [
      fixture.seed.workspaces.shared,
      fixture.seed.projects.launch,
      title,
    ]);
    await waitFor('alice to have it', async () => (await task(alice, row!.id)) !== undefined);
    return row!.id;
  };

  it("keeps bob's offline status change and alice's later rename, on the server and on both replicas", async () => {
    const id = await newTask('card');
    const dataDir = await bobOffline((bob) => bob.db.query(`UPDATE task SET status = 'done' WHERE id = $1`, [id]).then(() => undefined));
    await alice.db.query(`UPDATE task SET title = 'renamed by alice' WHERE id = $1`, [id]);
    await alice.flush();

    const bob = await createSyncClient({ url: fixture.url, token: bobToken, dataDir });
    const conflicts: unknown[] = [];
    bob.on('conflict', (conflict) => conflicts.push(conflict));
    try {
      await bob.flush();
      const expected = { title: 'renamed by alice', status: 'done', deleted: false };
      expect(await serverTask(id)).toEqual(expected);
      await waitFor('both replicas to hold both edits', async () => JSON.stringify([await task(alice, id), await task(bob, id)]) === JSON.stringify([expected, expected]));
      expect(conflicts).toEqual([]);
    } finally {
      await bob.close();
    }
  });

  it('decides the same column by clock: a later edit wins everywhere, and the loser hears which column it lost', async () => {
    const id = await newTask('contested');
    const dataDir = await bobOffline((bob) => bob.db.query(`UPDATE task SET title = 'bob, earlier', status = 'doing' WHERE id = $1`, [id]).then(() => undefined));
    await alice.db.query(`UPDATE task SET title = 'alice, later' WHERE id = $1`, [id]);
    await alice.flush();

    const bob = await createSyncClient({ url: fixture.url, token: bobToken, dataDir });
    const conflicts: Array<{ result: { status: string; columns?: { applied: string[]; lost: string[] }; row: Record<string, unknown> | null } }> = [];
    bob.on('conflict', (conflict) => conflicts.push(conflict as never));
    try {
      await bob.flush();
      const expected = { title: 'alice, later', status: 'doing', deleted: false };
      expect(await serverTask(id)).toEqual(expected);
      await waitFor('both replicas to agree', async () => JSON.stringify([await task(alice, id), await task(bob, id)]) === JSON.stringify([expected, expected]));
      expect(conflicts).toHaveLength(1);
      expect(conflicts[0]!.result).toMatchObject({ status: 'applied', columns: { applied: ['status'], lost: ['title'] }, row: { title: 'alice, later', status: 'doing' } });
    } finally {
      await bob.close();
    }
  });

  it('lets an offline delete win over an older edit, and keeps the row deleted under a later one', async () => {
    const id = await newTask('to delete');
    const dataDir = await bobOffline((bob) => bob.db.query(`DELETE FROM task WHERE id = $1`, [id]).then(() => undefined));
    await alice.db.query(`UPDATE task SET title = 'edited after the delete' WHERE id = $1`, [id]);
    await alice.flush();
    const bob = await createSyncClient({ url: fixture.url, token: bobToken, dataDir });
    try {
      await bob.flush();
      const expected = { title: 'edited after the delete', status: 'todo', deleted: true };
      expect(await serverTask(id)).toEqual(expected);
      await waitFor('both replicas to agree', async () => JSON.stringify([await task(alice, id), await task(bob, id)]) === JSON.stringify([expected, expected]));
    } finally {
      await bob.close();
    }
  });
});
