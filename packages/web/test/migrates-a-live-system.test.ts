import { PGlite } from '@electric-sql/pglite';
import { syncedTables } from '@walsync/db/browser';
import { describeSyncedTables, migrations, runServerMigrations } from '@walsync/db/server';
import { type SyncFixture, postgresTargets, startSyncFixture, waitFor } from '@walsync/test-support';
import { SyncClient, createSyncClient } from '@walsync/web';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { AddTag1900000000001, TAG } from './support/tag-migration';

/**
 * `yarn migration:run` of a newer build against a system that is running: a server process that
 * started before it, and a client of the older build connected. Nothing written after the run may
 * be missed, nothing may freeze.
 */
describe.each(postgresTargets())('a migration applied while the system runs ($name)', (target) => {
  let fixture: SyncFixture;

  beforeAll(async () => {
    fixture = await startSyncFixture('live-migration', target);
  });
  afterAll(async () => {
    await fixture?.dispose();
  });

  it('is captured at once, offered to connected clients at once, and leaves older builds syncing', async () => {
    const { db, seed, token, url } = fixture;
    const old = await createSyncClient({ url, token, dataDir: 'memory://' });
    const errors: Error[] = [];
    old.on('error', (error) => errors.push(error));
    let current: SyncClient | undefined;
    try {
      await old.ready;
      await waitFor('the old client live', () => old.status === 'up-to-date');

      // The newer build migrates the running system; a row goes into the new table the moment it returns.
      const started = Date.now();
      expect(await runServerMigrations(db.url, [...migrations, AddTag1900000000001] as never, { capture: [...(await describeSyncedTables()), TAG] })).toEqual(['AddTag1900000000001']);
      await db.query(`INSERT INTO tag (workspace_id, name) VALUES ($1, 'written right after the migration')`, [seed.workspaces.shared]);
      await db.query(`INSERT INTO task (workspace_id, project_id, title) VALUES ($1, $2, 'after the migration')`, [seed.workspaces.shared, seed.projects.launch]);

      // The connected client is offered the migration at once, and keeps receiving what it knows.
      await waitFor('the old client to apply the migration', async () => (await old.db.query(`SELECT 1 FROM client_migration WHERE "migrationName" = 'AddTag1900000000001' AND "clientApplied"`)).rows.length === 1, 5_000);
      expect(Date.now() - started).toBeLessThan(5_000);
      await waitFor('the task written after it', async () => (await old.db.query(`SELECT 1 FROM task WHERE title = 'after the migration'`)).rows.length === 1);
      expect((await old.db.query(`SELECT 1 FROM tag`)).rows).toHaveLength(0);
      expect(errors).toEqual([]);
      expect(old.status).toBe('up-to-date');

      // Captured with its scope by the server that was already running.
      const [history] = await db.query<{ scope_id: string | null }>(`SELECT scope_id::text FROM change_history WHERE table_name = 'tag'`);
      expect(history?.scope_id).toBe(seed.workspaces.shared);

      // A client of the newer build syncs the table: hydrated, hard deletes reach it, its writes are accepted by the running server.
      current = new SyncClient({ db: await PGlite.create(), options: { url, token, dataDir: 'memory://' }, openSocket: (to) => new WebSocket(to) as never, tables: [...syncedTables, TAG] });
      await current.start();
      await current.ready;
      const tags = async () => (await current!.db.query<{ name: string }>(`SELECT name FROM tag WHERE deleted_at IS NULL ORDER BY name`)).rows.map((row) => row.name);
      expect(await tags()).toEqual(['written right after the migration']);
      await db.query(`INSERT INTO tag (workspace_id, name) VALUES ($1, 'to be deleted')`, [seed.workspaces.shared]);
      await waitFor('the second tag', async () => (await tags()).length === 2);
      await db.query(`DELETE FROM tag WHERE name = 'to be deleted'`);
      await waitFor('the hard delete', async () => (await current!.db.query(`SELECT 1 FROM tag WHERE name = 'to be deleted'`)).rows.length === 0);
      await current.db.query(`INSERT INTO tag (workspace_id, name) VALUES ($1, 'from the new build')`, [seed.workspaces.shared]);
      await current.flush();
      expect(await db.query(`SELECT 1 FROM tag WHERE name = 'from the new build'`)).toHaveLength(1);
      expect(errors).toEqual([]);
    } finally {
      await current?.close();
      await old.close();
    }
  });
});
