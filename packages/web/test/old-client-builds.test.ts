import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { syncedTables } from '@walsync/db/browser';
import { parsePosition } from '@walsync/db/server';
import { type SyncFixture, startSyncFixture, waitFor } from '@walsync/test-support';
import { SyncClient, createSyncClient } from '@walsync/web';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';

/**
 * A client build older than the server's schema: it does not sync a table a later migration added.
 * Here the "old build" is a SyncClient whose build syncs every table but `comment` (what a build made
 * before `comment` existed would know); its replica applies the server's migrations as any does.
 */
describe('a client build older than the schema', () => {
  let fixture: SyncFixture;

  beforeAll(async () => {
    fixture = await startSyncFixture('old-builds');
  });
  afterAll(async () => {
    await fixture?.dispose();
  });

  const comments = (db: SyncClient['db']) => db.query<{ body: string }>(`SELECT body FROM comment ORDER BY body`).then((result) => result.rows.map((row) => row.body));

  it('keeps receiving every change of what it knows, skipping the table it does not; a newer build re-snapshots it in', async () => {
    const { db, seed } = fixture;
    const [task] = await db.query<{ id: string }>(`INSERT INTO task (workspace_id, project_id, title) VALUES ($1, $2, 'commented') RETURNING id`, [
      seed.workspaces.shared,
      seed.projects.launch,
    ]);
    const comment = (body: string) =>
      db.query(`INSERT INTO comment (workspace_id, task_id, author_id, body) VALUES ($1, $2, $3, $4)`, [seed.workspaces.shared, task!.id, seed.users.alice, body]);
    await comment('before the old client');

    const dataDir = path.join(fixture.scratch.dir, 'old-build');
    const old = new SyncClient({
      db: await PGlite.create(dataDir),
      options: { url: fixture.url, token: fixture.token, dataDir },
      openSocket: (url) => new WebSocket(url) as never,
      tables: syncedTables.filter((table) => table.name !== 'comment'),
    });
    const errors: Error[] = [];
    old.on('error', (error) => errors.push(error));
    try {
      await old.start();
      await old.ready;
      expect(await comments(old.db)).toEqual([]);

      // One transaction with a row of each: the batch applies what this build knows.
      await db.query(`WITH c AS (INSERT INTO comment (workspace_id, task_id, author_id, body) VALUES ($1, $2, $3, 'while old') RETURNING 1)
                      UPDATE task SET title = 'renamed with a comment' WHERE id = $2`, [seed.workspaces.shared, task!.id, seed.users.alice]);
      await comment('only a comment');
      await db.query(`UPDATE task SET title = 'renamed again' WHERE id = $1`, [task!.id]);
      await waitFor('the last rename', async () => (await old.db.query<{ title: string }>(`SELECT title FROM task WHERE id = $1`, [task!.id])).rows[0]?.title === 'renamed again');
      const position = (await old.db.query<{ value: string }>(`SELECT value FROM walsync_state WHERE key = 'position'`)).rows[0]!.value;
      await waitFor('the position to reach the server', async () => {
        const [head] = await db.query<{ lsn: string }>(`SELECT max(commit_lsn)::text AS lsn FROM change_history`);
        return BigInt(head!.lsn) <= parsePosition(position);
      });
      expect(errors).toEqual([]);
      expect(old.status).toBe('up-to-date');
      expect(await comments(old.db)).toEqual([]);
    } finally {
      await old.close();
    }

    // The app updates to a build that syncs comments: the replica is re-snapshotted, keeping a local write.
    const current = await createSyncClient({ url: fixture.url, token: fixture.token, dataDir });
    try {
      await current.db.query(`UPDATE task SET title = 'edited by the new build' WHERE id = $1`, [task!.id]);
      await waitFor('the comments', async () => (await comments(current.db)).length === 3, 20_000);
      expect(await comments(current.db)).toEqual(['before the old client', 'only a comment', 'while old']);
      await current.flush();
      expect((await db.query<{ title: string }>(`SELECT title FROM task WHERE id = $1`, [task!.id]))[0]!.title).toBe('edited by the new build');
    } finally {
      await current.close();
    }
  });
});
