import path from 'node:path';
import { migrationChecksum } from '@walsync/db/server';
import { Tokens, type WalsyncServer } from '@walsync/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scratchDir } from '../../db/test/support/postgres';
import { type TestDatabase, postgresTargets, seedWorkspaces, startDatabase, waitFor } from '../../server/test/support/database';
import { TEST_JWT_SECRET, startServer } from '../../server/test/support/servers';
import { type SyncClient, createSyncClient } from '@walsync/web';

const count = async (client: SyncClient, sql: string) => (await client.db.query<{ n: number }>(sql)).rows[0]!.n;
const position = async (client: SyncClient) => (await client.db.query<{ value: string }>(`SELECT value FROM walsync_state WHERE key = 'position'`)).rows[0]?.value;

describe('a client refused by its server', () => {
  let db: TestDatabase;
  let server: WalsyncServer;
  let seed: Awaited<ReturnType<typeof seedWorkspaces>>;
  let token: string;
  const scratch = scratchDir('web-refusals');

  beforeAll(async () => {
    db = await startDatabase(postgresTargets()[0]!);
    server = await startServer(db.url);
    seed = await seedWorkspaces(db);
    token = await new Tokens(TEST_JWT_SECRET).issue(seed.users.alice);
  });
  afterAll(async () => {
    await server?.stop();
    await db?.dispose();
    scratch.remove();
  });

  /** A replica that synced once, then closed. */
  async function syncedReplica(name: string): Promise<string> {
    const dataDir = path.join(scratch.dir, name);
    const client = await createSyncClient({ url: server.url, token, dataDir });
    await client.ready;
    await client.close();
    return dataDir;
  }

  it('stops on a token the server refuses: a clear error, no retries, nothing lost; a good token resumes', async () => {
    const dataDir = await syncedReplica('bad-token');
    const forged = await new Tokens('another-secret-0123456789abcdef').issue(seed.users.alice);
    const client = await createSyncClient({ url: server.url, token: forged, dataDir });
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
    const resumed = await createSyncClient({ url: server.url, token, dataDir });
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
      const fresh = await createSyncClient({ url: server.url, token, dataDir: 'memory://' });
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
      const client = await createSyncClient({ url: server.url, token, dataDir });
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
      } finally {
        await client.close();
      }
    } finally {
      await db.query(`DELETE FROM client_migration WHERE "migrationName" = 'Broken1900000000000'`);
    }
  });
});
