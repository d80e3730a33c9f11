import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { WalsyncError, messageOf } from '../errors';
import type { MigrationClass } from '../extraction/extract';
import type { MigrationQuery } from '../schema/migration';
import { createDataSource } from './data-source';
import { runServerMigrations } from './migration-runner';

export interface SchemaDiff {
  up: MigrationQuery[];
  down: MigrationQuery[];
}

/**
 * What the entities need beyond the migrations: TypeORM's schema builder run against a scratch
 * database (created in the same cluster, migrated, compared, dropped), so the real database is
 * never touched. `down` is in the order it must run.
 */
export async function diffEntitiesAgainstMigrations(url: string, migrationClasses: MigrationClass[]): Promise<SchemaDiff> {
  const scratchName = `walsync_diff_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  try {
    try {
      await admin.query(`CREATE DATABASE ${scratchName}`);
    } catch (error) {
      throw new WalsyncError(
        'DATABASE_UNREACHABLE',
        `migration:generate compares against a scratch database, but creating one failed (${messageOf(error)}). Use a role that may CREATE DATABASE.`,
        {},
        error,
      );
    }
    try {
      const scratch = new URL(url);
      scratch.pathname = `/${scratchName}`;
      await runServerMigrations(scratch.toString(), migrationClasses);
      const dataSource = createDataSource(scratch.toString(), migrationClasses);
      await dataSource.initialize();
      try {
        const sql = await dataSource.driver.createSchemaBuilder().log();
        const asQuery = (query: { query: string; parameters?: unknown[] }) => ({ sql: query.query, params: query.parameters ?? [] });
        return { up: sql.upQueries.map(asQuery), down: sql.downQueries.map(asQuery).reverse() };
      } finally {
        await dataSource.destroy();
      }
    } finally {
      await admin.query(`DROP DATABASE IF EXISTS ${scratchName} WITH (FORCE)`);
    }
  } finally {
    await admin.end();
  }
}
