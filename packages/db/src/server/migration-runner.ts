import { type DataSource, MigrationExecutor } from 'typeorm';
import { extractMigrations, migrationIdentity, type MigrationClass } from '../extraction/extract';
import type { SyncedTable } from '../schema/tables';
import { installCapture } from './capture';
import { readSchema, storeSchema } from './schema-record';
import { describeSyncedTables } from './synced-tables';
import { migrations as schemaMigrations } from '../migrations';
import { CREATE_CLIENT_MIGRATION_TABLE } from '../schema/client-migration';
import { markServerApplied, storeCatalogInTransaction } from './catalog';
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

export interface RunMigrationsOptions {
  /**
   * The synced tables capture must cover once the migrations are applied (publication, stamp
   * triggers, replica identity: see installCapture), in the same transaction. By default the build's
   * synced tables when the build's own migrations run; none for another list (a test's subset).
   */
  capture?: SyncedTable[] | false;
}

/**
 * Applies the pending migrations to the server in ONE transaction (TypeORM's runner on our query
 * runner) together with everything that must change with them: capture of the synced tables
 * (publication, stamp triggers; a synced table that would lose deletes refuses the whole run), the
 * `client_migration` catalog clients are served from, and the schema the running servers reload
 * (`walsync_schema`, announced by NOTIFY at commit). Nothing written to a new table after it commits
 * can be missed, and nothing is half-applied. Returns the names it applied.
 *
 * @example
 *   const applied = await runServerMigrations(database.url);
 */
export async function runServerMigrations(url: string, migrationClasses: MigrationClass[] = schemaMigrations, options: RunMigrationsOptions = {}): Promise<string[]> {
  const extracted = await extractMigrations(migrationClasses);
  const capture = options.capture ?? (migrationClasses === schemaMigrations ? await describeSyncedTables() : false);
  return withDataSource(url, migrationClasses, (dataSource) =>
    inMigrationTransaction(dataSource, async (executor, client) => {
      const applied = (await executor.executePendingMigrations()).map((migration) => migration.name);
      if (capture) await installCapture(client, capture);
      await storeCatalogInTransaction(client, extracted);
      if (capture) await storeSchema(client, capture, migrationIdentity(migrationClasses.at(-1)!).name, { applied });
      return applied;
    }),
  );
}

/**
 * Runs `work` with TypeORM's migration executor on a query runner of ours, inside one transaction of
 * ours (the executor starts none of its own), under the advisory lock that serialises migration
 * runs and reverts across processes: all of it commits, or none.
 */
async function inMigrationTransaction<T>(dataSource: DataSource, work: (executor: MigrationExecutor, client: import('pg').ClientBase) => Promise<T>): Promise<T> {
  const queryRunner = dataSource.createQueryRunner();
  await queryRunner.connect();
  const client = (queryRunner as unknown as PgQueryRunner).databaseConnection;
  try {
    // Several server processes may start at once; one migrates, the others wait and find nothing to do.
    await client.query(`SELECT pg_advisory_lock(hashtext('walsync.migrations'))`);
    try {
      await client.query(CREATE_CLIENT_MIGRATION_TABLE);
      await queryRunner.startTransaction();
      try {
        const executor = new MigrationExecutor(dataSource, queryRunner);
        executor.transaction = 'all';
        const result = await work(executor, client);
        await queryRunner.commitTransaction();
        return result;
      } catch (error) {
        await queryRunner.rollbackTransaction().catch(() => undefined);
        throw error;
      }
    } finally {
      await client.query(`SELECT pg_advisory_unlock(hashtext('walsync.migrations'))`);
    }
  } finally {
    await queryRunner.release();
  }
}

/**
 * Reverts the server's latest migration, in one transaction with what must change with it: capture
 * and the recorded schema narrowed to the tables and columns that still exist, the catalog's
 * `appliedAt`, and the migration marked reverted, so running servers offer connected clients to roll
 * it back (NOTIFY at commit). Returns its name, or undefined when none is applied.
 */
export async function revertLastServerMigration(url: string, migrationClasses: MigrationClass[] = schemaMigrations): Promise<string | undefined> {
  return withDataSource(url, migrationClasses, async (dataSource) => {
    const before = await appliedNames(dataSource);
    return inMigrationTransaction(dataSource, async (executor, client) => {
      await executor.undoLastMigration();
      const after = (await client.query<{ name: string }>(`SELECT name FROM migrations ORDER BY id`)).rows.map((row) => row.name);
      const reverted = before.find((name) => !after.includes(name));
      await markServerApplied(client);
      const recorded = await readSchema(client);
      if (reverted && recorded) {
        const remaining = await existingParts(client, recorded.tables);
        await installCapture(client, remaining, { check: false });
        await storeSchema(client, remaining, after.at(-1) ?? '', { reverted: [reverted] });
      }
      return reverted;
    });
  });
}

/** The synced tables, and their columns, that exist in the database now (after a revert dropped some). */
async function existingParts(client: import('pg').ClientBase, tables: SyncedTable[]): Promise<SyncedTable[]> {
  const result = await client.query<{ table_name: string; column_name: string }>(
    `SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public' AND table_name = ANY($1::text[])`,
    [tables.map((table) => table.name)],
  );
  const present = new Set(result.rows.map((row) => `${row.table_name}.${row.column_name}`));
  return tables
    .filter((table) => present.has(`${table.name}.${table.primaryKey[0]}`))
    .map((table) => ({ ...table, columns: table.columns.filter((column) => present.has(`${table.name}.${column.name}`)) }));
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
