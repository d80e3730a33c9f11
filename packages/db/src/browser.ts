/**
 * @walsync/db for browsers and any JavaScript runtime: the schema as data (migrations, synced
 * tables) and the MigrationAPI over PGlite. No TypeORM in here.
 */
import type { PGliteInterface } from '@electric-sql/pglite';
import catalog from 'walsync:catalog';
import { createMigrationAPI as createMigrationAPIFor, type MigrationAPI } from './client/migration-api';
export { appliedMigrations, appliedSchemaVersion } from './client/migration-api';
import { validateMigrationList } from './client/validate-migrations';
import type { ExtractedMigration } from './schema/migration';
import type { SyncedTable } from './schema/tables';

export type { MigrationAPI, MigrationResult, MigrationResultSet, MigrationState, MigrationStatus } from './client/migration-api';
export * from './shared';

/** Every migration of the schema, in order, as extracted at build time. */
export const migrations: ExtractedMigration[] = validateMigrationList(catalog.migrations, '@walsync/db migrations');

/** The name of the latest migration: the schema version this build speaks. */
export const schemaVersion: string = catalog.schemaVersion;

/** The synced tables: columns, primary key and scope column. */
export const syncedTables: SyncedTable[] = catalog.tables;

/**
 * The MigrationAPI for a PGlite database; by default over this build's migrations, or over the
 * list a server sent.
 *
 * @example
 *   const pglite = await PGlite.create('idb://app');
 *   const { error } = await createMigrationAPI(pglite).migrateToLatest();
 */
export function createMigrationAPI(pglite: PGliteInterface, options: { migrations?: ExtractedMigration[] } = {}): MigrationAPI {
  return createMigrationAPIFor(pglite, { migrations: options.migrations ?? migrations });
}
