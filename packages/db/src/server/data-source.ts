import 'reflect-metadata';
import { DataSource } from 'typeorm';
import { entities } from '../entities';
import { migrations } from '../migrations';

/** TypeORM's own bookkeeping table on the server (clients use client_migration instead). */
export const TYPEORM_MIGRATIONS_TABLE = 'migrations';

/**
 * The server's DataSource over a Postgres URL, with the schema's entities and migrations.
 *
 * @example
 *   const dataSource = createDataSource(process.env.DATABASE_URL!);
 *   await dataSource.initialize();
 */
export function createDataSource(url: string, migrationClasses: Function[] = migrations): DataSource {
  return new DataSource({
    type: 'postgres',
    url,
    entities,
    migrations: migrationClasses,
    migrationsTableName: TYPEORM_MIGRATIONS_TABLE,
    migrationsTransactionMode: 'each',
    // gen_random_uuid() is built into Postgres >= 13 and PGlite; no extension is created.
    uuidExtension: 'pgcrypto',
    installExtensions: false,
    synchronize: false,
    logging: false,
  });
}
