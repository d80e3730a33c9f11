import { extractMigrations, type MigrationClass } from '../extraction/extract';
import { migrations as schemaMigrations } from '../migrations';
import { CREATE_CLIENT_MIGRATION_TABLE } from '../schema/client-migration';
import { markServerApplied, storeCatalog } from './catalog';
import { createDataSource } from './data-source';

export interface ServerMigrationStatus {
  name: string;
  applied: boolean;
}

type PgQueryRunner = { query(sql: string, params?: unknown[]): Promise<unknown>; databaseConnection: import('pg').ClientBase };

async function withDataSource<T>(url: string, migrationClasses: MigrationClass[], work: (dataSource: ReturnType<typeof createDataSource>) => Promise<T>): Promise<T> {
  const dataSource = createDataSource(url, migrationClasses);
  await dataSource.initialize();
  try {
    return await work(dataSource);
  } finally {
    await dataSource.destroy();
  }
}

async function withClient<T>(dataSource: ReturnType<typeof createDataSource>, work: (client: import('pg').ClientBase) => Promise<T>): Promise<T> {
  const queryRunner = dataSource.createQueryRunner();
  await queryRunner.connect();
  try {
    return await work((queryRunner as unknown as PgQueryRunner).databaseConnection);
  } finally {
    await queryRunner.release();
  }
}

/**
 * Applies the pending migrations to the server (each in its own transaction, with TypeORM's
 * runner) and stores every migration's SQL in the `client_migration` catalog for clients.
 * Returns the names it applied.
 *
 * @example
 *   const applied = await runServerMigrations(database.url);
 */
export async function runServerMigrations(url: string, migrationClasses: MigrationClass[] = schemaMigrations): Promise<string[]> {
  const extracted = await extractMigrations(migrationClasses);
  return withDataSource(url, migrationClasses, (dataSource) =>
    withClient(dataSource, async (client) => {
      // Several server processes may start at once; one migrates, the others wait and find nothing to do.
      await client.query(`SELECT pg_advisory_lock(hashtext('walsync.migrations'))`);
      try {
        await client.query(CREATE_CLIENT_MIGRATION_TABLE);
        const applied = await dataSource.runMigrations({ transaction: 'each' });
        await storeCatalog(client, extracted);
        return applied.map((migration) => migration.name);
      } finally {
        await client.query(`SELECT pg_advisory_unlock(hashtext('walsync.migrations'))`);
      }
    }),
  );
}

/** Reverts the server's latest migration; returns its name, or undefined when none is applied. */
export async function revertLastServerMigration(url: string, migrationClasses: MigrationClass[] = schemaMigrations): Promise<string | undefined> {
  return withDataSource(url, migrationClasses, async (dataSource) => {
    const before = await appliedNames(dataSource);
    await dataSource.undoLastMigration({ transaction: 'each' });
    const after = await appliedNames(dataSource);
    await withClient(dataSource, async (client) => {
      await client.query(CREATE_CLIENT_MIGRATION_TABLE);
      await markServerApplied(client);
    });
    return before.find((name) => !after.includes(name));
  });
}

/** Every known migration and whether the server has applied it. */
export async function serverMigrationStatus(url: string, migrationClasses: MigrationClass[] = schemaMigrations): Promise<ServerMigrationStatus[]> {
  const extracted = await extractMigrations(migrationClasses);
  return withDataSource(url, migrationClasses, async (dataSource) => {
    const applied = await appliedNames(dataSource);
    return extracted.map((migration) => ({ name: migration.name, applied: applied.includes(migration.name) }));
  });
}

/** The names of the migrations the server has applied, read from TypeORM's table (no extraction, so a broken migration does not stand in the way). */
export async function appliedServerMigrations(url: string): Promise<string[]> {
  return withDataSource(url, [], appliedNames);
}

async function appliedNames(dataSource: ReturnType<typeof createDataSource>): Promise<string[]> {
  const exists = await dataSource.query(`SELECT to_regclass('migrations') AS name`);
  if (!exists[0].name) return [];
  return (await dataSource.query(`SELECT name FROM migrations ORDER BY id`)).map((row: { name: string }) => row.name);
}
