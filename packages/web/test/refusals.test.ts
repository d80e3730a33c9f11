import path from 'node:path';
import { migrationChecksum } from '@walsync/db/server';
import { Tokens } from '@walsync/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type SyncFixture, startSyncFixture, waitFor } from '@walsync/test-support';
import { type SyncClient, createSyncClient } from '@walsync/web';

const count = async (client: SyncClient, sql: string) => (await client.db.query<{ n: number }>(sql)).rows[0]!.n;
const position = async (client: SyncClient) => (await client.db.query<{ value: string }>(`SELECT value FROM walsync_state WHERE key = 'position'`)).rows[0]?.value;

describe('a client refused by its server', () => {
  let fixture: SyncFixture;
  let db: SyncFixture['db'];
  let seed: SyncFixture['seed'];
  let token: string;
  let scratch: SyncFixture['scratch'];
  let url: string;

  beforeAll(async () => {
    fixture = await startSyncFixture('web-refusals');
    ({ db, seed, token, scratch, url } = fixture);
  });
  afterAll(async () => {
    await fixture?.dispose();
  });

  /** A replica that synced once, then closed. */
  async function syncedReplica(name: string): Promise<string> {
    const dataDir = path.join(scratch.dir, name);
    const client = await createSyncClient({ url, token, dataDir });
    await client.ready;
    await client.close();
    return dataDir;
  }

  it('stops on a token the server refuses: a clear error, no retries, nothing lost; a good token resumes', async () => {
    const dataDir = await syncedReplica('bad-token');
    const forged = await new Tokens('another-secret-0123456789abcdef').issue(seed.users.alice);
    const client = await createSyncClient({ url, token: forged, dataDir });
    const errors: Array<Error & { code?: string }> = [];
    client.on('error', (error) => errors.push(error));
    const before = await position(client);
    try {
      await client.db.query(`INSERT INTO task (workspace_id, project_id, title) VALUES ($1, $2, 'written under a refused token')`, [seed.workspaces.shared, seed.projects.launch]);
      await waitFor('the refusal', () => errors.length > 0);
      expect(errors[0]).toMatchObject({ code: 'refused', message: expect.stringMatching(/refused this client/) });
      expect(client.status).toBe('offline');
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      expect(errors).toHaveLength(1); // not retried with the same token
      expect(await count(client, `SELECT count(*)::int AS n FROM walsync_outbox`)).toBe(1);
      expect(await position(client)).toBe(before);
      expect(await db.query(`SELECT 1 FROM task WHERE title = 'written under a refused token'`)).toHaveLength(0);
    } finally {
      await client.close();
    }
    const resumed = await createSyncClient({ url, token, dataDir });
    try {
      await resumed.flush();
      expect(await db.query(`SELECT 1 FROM task WHERE title = 'written under a refused token'`)).toHaveLength(1);
    } finally {
      await resumed.close();
    }
  });

  it('stops on a migration that fails: a clear error, the database as it was, the outbox kept', async () => {
    const dataDir = await syncedReplica('bad-migration');

    // The server's catalog gains a migration that cannot apply on a client (its table does not exist there).
    const up = [{ sql: 'ALTER TABLE "task" ADD COLUMN "broken_ref" uuid REFERENCES "no_such_table" ("id")', params: [] }];
    await db.query(
      `INSERT INTO client_migration ("migrationName", "timestamp", "upQueries", "downQueries", checksum, "clientApplied", "appliedAt")
       VALUES ('Broken1900000000000', 1900000000000, $1, '[]', $2, true, now())`,
      [JSON.stringify(up), migrationChecksum('Broken1900000000000', up)],
    );
    try {
      // A new client: ready rejects, nothing half-applied.
      const fresh = await createSyncClient({ url, token, dataDir: 'memory://' });
      try {
        await expect(fresh.ready).rejects.toMatchObject({ code: 'migration_failed', message: expect.stringMatching(/Broken1900000000000|no_such_table/) });
        const columns = await fresh.db.query(`SELECT 1 FROM information_schema.columns WHERE table_name = 'task' AND column_name = 'broken_ref'`);
        expect(columns.rows).toHaveLength(0);
        const recorded = await fresh.db.query<{ applied: boolean; error: string | null }>(`SELECT "clientApplied" AS applied, error FROM client_migration WHERE "migrationName" = 'Broken1900000000000'`);
        expect(recorded.rows[0]).toMatchObject({ applied: false, error: expect.stringMatching(/no_such_table/) });
      } finally {
        await fresh.close();
      }

      // An existing replica keeps its rows, position and outbox, and reports the failure.
      const client = await createSyncClient({ url, token, dataDir });
      const errors: Array<Error & { code?: string }> = [];
      client.on('error', (error) => errors.push(error));
      try {
        const tasks = await count(client, `SELECT count(*)::int AS n FROM task`);
        const before = await position(client);
        await client.db.query(`INSERT INTO task (workspace_id, project_id, title) VALUES ($1, $2, 'kept through a failed migration')`, [seed.workspaces.shared, seed.projects.launch]);
        await waitFor('the migration failure', () => errors.some((error) => error.code === 'migration_failed'));
        expect(await count(client, `SELECT count(*)::int AS n FROM task`)).toBe(tasks + 1);
        expect(await count(client, `SELECT count(*)::int AS n FROM walsync_outbox`)).toBe(1);
        expect(await position(client)).toBe(before);
        // It stops there, says so, and keeps trying on its backoff without repeating the error.
        expect(client.status).toBe('error');
        await expect(client.flush()).rejects.toMatchObject({ code: 'migration_failed' });
        await new Promise((resolve) => setTimeout(resolve, 1_500));
        expect(client.status).toBe('error');
        expect(errors.filter((error) => error.code === 'migration_failed')).toHaveLength(1);
        expect(await count(client, `SELECT count(*)::int AS n FROM walsync_outbox`)).toBe(1);

        // The server is fixed (the migration withdrawn): the replica resumes from its position and pushes what it kept.
        await db.query(`DELETE FROM client_migration WHERE "migrationName" = 'Broken1900000000000'`);
        await waitFor('up to date again', () => client.status === 'up-to-date', 20_000);
        await client.flush();
        expect(await db.query(`SELECT 1 FROM task WHERE title = 'kept through a failed migration'`)).toHaveLength(1);
        expect(await count(client, `SELECT count(*)::int AS n FROM walsync_outbox`)).toBe(0);
      } finally {
        await client.close();
      }
    } finally {
      await db.query(`DELETE FROM client_migration WHERE "migrationName" = 'Broken1900000000000'`);
    }
  });
});
