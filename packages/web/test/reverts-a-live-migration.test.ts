import path from 'node:path';
import { describeSyncedTables, migrations, revertLastServerMigration, runServerMigrations } from '@walsync/db/server';
import { type SyncFixture, postgresTargets, startSyncFixture, waitFor } from '@walsync/test-support';
import { type SyncClient, createSyncClient } from '@walsync/web';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AddTag1900000000001, TAG } from './support/tag-migration';

/**
 * `yarn migration:revert` on a live system: the clients that applied the migration, connected or
 * offline, roll it back and re-snapshot (keeping unsent writes) — never diverged and up-to-date.
 */
describe.each(postgresTargets())('a migration reverted while clients hold it ($name)', (target) => {
  let fixture: SyncFixture;
  const withTag = [...migrations, AddTag1900000000001] as never;

  beforeAll(async () => {
    fixture = await startSyncFixture('live-revert', target);
  });
  afterAll(async () => {
    await fixture?.dispose();
  });

  const applied = async (client: SyncClient) =>
    (await client.db.query(`SELECT 1 FROM client_migration WHERE "migrationName" = 'AddTag1900000000001' AND "clientApplied"`)).rows.length === 1;
  const hasTagTable = async (client: SyncClient) => (await client.db.query<{ name: string | null }>(`SELECT to_regclass('tag')::text AS name`)).rows[0]!.name !== null;

  it('rolls the migration back on connected and offline clients, and a run after it brings it back', async () => {
    const { db, seed, token, url } = fixture;
    const connected = await createSyncClient({ url, token, dataDir: 'memory://' });
    const offlineDir = path.join(fixture.scratch.dir, 'offline');
    let offline = await createSyncClient({ url, token, dataDir: offlineDir });
    const errors: Error[] = [];
    connected.on('error', (error) => errors.push(error));
    try {
      await Promise.all([connected.ready, offline.ready]);
      await runServerMigrations(db.url, withTag, { capture: [...(await describeSyncedTables()), TAG] });
      await waitFor('both at the new version', async () => (await applied(connected)) && (await applied(offline)));
      await offline.close();

      // The revert: the connected client rolls back at once; the offline one when it returns, with its unsent write.
      expect(await revertLastServerMigration(db.url, withTag)).toBe('AddTag1900000000001');
      await waitFor('the connected client to roll back', async () => !(await applied(connected)) && !(await hasTagTable(connected)), 10_000);
      await waitFor('up to date', () => connected.status === 'up-to-date');

      offline = await createSyncClient({ url, token, dataDir: offlineDir });
      offline.on('error', (error) => errors.push(error));
      await offline.db.query(`INSERT INTO task (workspace_id, project_id, title) VALUES ($1, $2, 'written across the revert')`, [seed.workspaces.shared, seed.projects.launch]);
      await waitFor('the offline client to roll back', async () => !(await applied(offline)) && !(await hasTagTable(offline)), 10_000);
      await offline.flush();
      expect(await db.query(`SELECT 1 FROM task WHERE title = 'written across the revert'`)).toHaveLength(1);
      await waitFor('the write at the connected client', async () => (await connected.db.query(`SELECT 1 FROM task WHERE title = 'written across the revert'`)).rows.length === 1);

      // Run again: offered again, applied again.
      await runServerMigrations(db.url, withTag, { capture: [...(await describeSyncedTables()), TAG] });
      await waitFor('both at the new version again', async () => (await applied(connected)) && (await applied(offline)));
      expect(errors).toEqual([]);
      expect(connected.status).toBe('up-to-date');
    } finally {
      await offline.close();
      await connected.close();
    }
  });
});
