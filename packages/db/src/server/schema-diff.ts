import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { WalsyncError, messageOf } from '../errors';
import type { MigrationClass } from '../extraction/extract';
import type { MigrationQuery } from '../schema/migration';
import type { DataSource } from 'typeorm';
import { quoteIdent } from '../rules/sql';
import { createDataSource } from './data-source';
import { describeSyncedTables } from './synced-tables';
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
      // Capture is not installed: the entities may have a synced table the migrations do not create yet.
      await runServerMigrations(scratch.toString(), migrationClasses, { capture: false });
      const dataSource = createDataSource(scratch.toString(), migrationClasses);
      await dataSource.initialize();
      try {
        const sql = await dataSource.driver.createSchemaBuilder().log();
        const asQuery = (query: { query: string; parameters?: unknown[] }) => ({ sql: query.query, params: query.parameters ?? [] });
        const identity = await replicaIdentityDiff(dataSource);
        return { up: [...sql.upQueries.map(asQuery), ...identity.up], down: [...identity.down, ...sql.downQueries.map(asQuery).reverse()] };
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

/**
 * What capture needs that TypeORM does not know: every synced table with REPLICA IDENTITY FULL (a
 * DELETE must carry the row's scope). A new synced table gets it in the migration that creates it.
 */
async function replicaIdentityDiff(dataSource: DataSource): Promise<SchemaDiff> {
  const tables = await describeSyncedTables();
  const rows: Array<{ name: string; identity: string | null }> = await dataSource.query(
    `SELECT t.name, c.relreplident::text AS identity FROM unnest($1::text[]) AS t(name) LEFT JOIN pg_class c ON c.oid = to_regclass(quote_ident(t.name))`,
    [tables.map((table) => table.name)],
  );
  const lacking = rows.filter((row) => row.identity !== 'f');
  return {
    up: lacking.map((row) => ({ sql: `ALTER TABLE ${quoteIdent(row.name)} REPLICA IDENTITY FULL`, params: [] })),
    // A table the migration creates is dropped by its down; one that existed goes back to the default identity.
    down: lacking.filter((row) => row.identity !== null).map((row) => ({ sql: `ALTER TABLE ${quoteIdent(row.name)} REPLICA IDENTITY DEFAULT`, params: [] })),
  };
}
