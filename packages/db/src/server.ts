/**
 * @walsync/db for Node servers and tools: the TypeORM entities and migrations, the DataSource
 * factory, the server migration runner and catalog, SQL extraction, and the Postgres lifecycle.
 */
import 'reflect-metadata';
import { migrationIdentity } from './extraction/extract';
import { migrations } from './migrations';

export * from './entities';
export { migrations };
export { extractMigration, extractMigrations, migrationIdentity, type MigrationClass } from './extraction/extract';
export { checkMigrationsOnPGlite } from './extraction/pglite-check';
export { assertReachable, describeUrl, openDatabase, type Database, type OpenDatabaseOptions } from './postgres/database';
export { LocalPostgres, defaultLocalDataDir, freePort, runningLocalPostgres, type LocalPostgresOptions } from './postgres/local-postgres';
export { migrationFileName } from './schema/migration';
export * from './shared';
export { Synced, syncOptionsOf } from './schema/synced';
export { TABLE_REFERENCE_END, TABLE_REFERENCE_START, tableReference, withTableReference } from './schema/table-reference';
export { PUBLICATION, assertCaptureReady, installCapture } from './server/capture';
export { addColumnIfMissing, createIndexIfMissing, relationExists } from './server/ddl';
export { SCHEMA_CHANNEL, SCHEMA_TABLE, readSchema, storeSchema, type RecordedSchema } from './server/schema-record';
export { readCatalog, storeCatalog, type CatalogResult } from './server/catalog';
export { TYPEORM_MIGRATIONS_TABLE, createDataSource } from './server/data-source';
export { readExtractedMigrations, writeExtractedMigrations } from './server/extracted-files';
export { appliedServerMigrations, revertLastServerMigration, runServerMigrations, serverMigrationStatus, type RunMigrationsOptions } from './server/migration-runner';
export { describeSyncedTables } from './server/synced-tables';

/** The name of the latest migration: the schema version this build speaks. */
export const schemaVersion: string = migrationIdentity(migrations.at(-1)!).name;
