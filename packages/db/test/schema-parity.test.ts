import { PGlite } from '@electric-sql/pglite';
import { createMigrationAPI, migrations } from '@walsync/db';
import { revertLastServerMigration, runServerMigrations } from '@walsync/db/server';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postgresTargets, startPostgres } from '@walsync/test-support';
import { type RunQuery, schemaSnapshot } from './support/schema-snapshot';

const pgliteRunner = (db: PGlite): RunQuery => async (sql) => (await db.query<Record<string, unknown>>(sql)).rows;

/** The schema a fresh PGlite has after every migration: what every server must match. */
async function pgliteSchema(): Promise<{ migrated: Awaited<ReturnType<typeof schemaSnapshot>>; afterDownUp: Awaited<ReturnType<typeof schemaSnapshot>>; empty: Awaited<ReturnType<typeof schemaSnapshot>> }> {
  const db = await PGlite.create();
  try {
    const api = createMigrationAPI(db);
    expect((await api.migrateToLatest()).error).toBeUndefined();
    const migrated = await schemaSnapshot(pgliteRunner(db));
    for (const migration of [...migrations].reverse()) {
      expect((await api.rollbackMigration(migration.name)).error).toBeUndefined();
    }
    const empty = await schemaSnapshot(pgliteRunner(db));
    expect((await api.migrateToLatest()).error).toBeUndefined();
    const afterDownUp = await schemaSnapshot(pgliteRunner(db));
    return { migrated, afterDownUp, empty };
  } finally {
    await db.close();
  }
}

describe('schema parity between the server Postgres and PGlite', () => {
  let client: Awaited<ReturnType<typeof pgliteSchema>>;
  beforeAll(async () => {
    client = await pgliteSchema();
  });

  it('PGlite: up, then down of every migration leaves only client_migration, and up again restores the same schema', () => {
    expect(client.empty.tables).toEqual([{ table: 'client_migration', replica_identity: 'd' }]);
    expect(client.empty.enums).toEqual([]);
    expect(client.afterDownUp).toEqual(client.migrated);
    expect(Object.fromEntries(client.migrated.tables.map((row) => [row.table, row.replica_identity]))).toEqual({
      // Synced tables send whole old rows through logical replication (REPLICA IDENTITY FULL).
      app_user: 'd',
      client_migration: 'd',
      workspace: 'f',
      workspace_member: 'f',
      project: 'f',
      task: 'f',
      comment: 'f',
    });
  });

  describe.each(postgresTargets())('$name', (target) => {
    let postgres: Awaited<ReturnType<typeof startPostgres>>;
    let db: pg.Client;
    const run: RunQuery = async (sql) => (await db.query(sql)).rows;

    beforeAll(async () => {
      postgres = await startPostgres(target);
      db = new pg.Client({ connectionString: postgres.url });
      await db.connect();
    });
    afterAll(async () => {
      await db?.end();
      await postgres?.dispose();
    });

    it('after all migrations has exactly the schema PGlite has', async () => {
      await runServerMigrations(postgres.url);
      expect(await schemaSnapshot(run)).toEqual(client.migrated);
    });

    it('after down and up of every migration still has exactly that schema', async () => {
      for (let i = 0; i < migrations.length; i++) expect(await revertLastServerMigration(postgres.url)).toBe(migrations.at(-1 - i)!.name);
      expect(await revertLastServerMigration(postgres.url)).toBeUndefined();
      expect(await schemaSnapshot(run)).toEqual(client.empty);
      await runServerMigrations(postgres.url);
      expect(await schemaSnapshot(run)).toEqual(client.migrated);
    });

    it('accepts a row inserted by plain SQL with only the required columns (defaults fill the rest), stamped for capture', async () => {
      // migration:run installs capture with the migrations: a row written right after it is stamped (and published).
      const workspace = await run(`INSERT INTO workspace (name) VALUES ('w') RETURNING id, version, hlc, deleted_at`);
      expect(workspace[0]).toMatchObject({ version: 1, hlc: expect.stringMatching(/^\d{15}:\d{6}:server$/), deleted_at: null });
      expect(await run(`SELECT pubname FROM pg_publication_tables WHERE tablename = 'workspace'`)).toEqual([{ pubname: 'walsync' }]);
      const project = await run(`INSERT INTO project (workspace_id, name) VALUES ('${workspace[0]!.id}', 'p') RETURNING id`);
      const task = await run(
        `INSERT INTO task (workspace_id, project_id, title) VALUES ('${workspace[0]!.id}', '${project[0]!.id}', 't') RETURNING status, position, labels`,
      );
      expect(task[0]).toEqual({ status: 'todo', position: 0, labels: [] });
    });
  });
});
