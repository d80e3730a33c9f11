import type pg from 'pg';
import { WalsyncError } from '../errors';
import { CREATE_CLIENT_MIGRATION_TABLE } from '../schema/client-migration';
import type { ExtractedMigration } from '../schema/migration';
import { TYPEORM_MIGRATIONS_TABLE } from './data-source';

export interface CatalogResult {
  /** Migrations added to the catalog by this call. */
  inserted: string[];
  /** Migrations that were already there with the same checksum. */
  unchanged: string[];
}

/** Serialises catalog writers across server processes. */
const CATALOG_LOCK = "hashtext('walsync.client_migration')";

/**
 * Upserts the server's `client_migration` catalog, the list clients are served migrations from,
 * and marks which of them the server itself has applied (`appliedAt`). All or nothing: a
 * migration already in the catalog with another checksum is an error, never an overwrite.
 */
export async function storeCatalog(client: pg.ClientBase, migrations: ExtractedMigration[]): Promise<CatalogResult> {
  await client.query('BEGIN');
  try {
    const result = await storeCatalogInTransaction(client, migrations);
    await client.query('COMMIT');
    return result;
  } catch (error) {
    await client.query('ROLLBACK');
    throw error;
  }
}

/** storeCatalog inside the caller's transaction (the one that applies the migrations). */
export async function storeCatalogInTransaction(client: pg.ClientBase, migrations: ExtractedMigration[]): Promise<CatalogResult> {
  {
    await client.query(`SELECT pg_advisory_xact_lock(${CATALOG_LOCK})`);
    await client.query(CREATE_CLIENT_MIGRATION_TABLE);
    const existing = new Map(
      (await client.query<{ migrationName: string; checksum: string }>(`SELECT "migrationName", checksum FROM client_migration`)).rows.map(
        (row) => [row.migrationName, row.checksum],
      ),
    );
    const changed = migrations.filter((migration) => existing.has(migration.name) && existing.get(migration.name) !== migration.checksum);
    if (changed.length > 0) {
      throw new WalsyncError(
        'CATALOG_CHECKSUM',
        `The SQL of ${changed.map((migration) => migration.name).join(', ')} changed after it was stored in client_migration ` +
          `(stored checksum ${existing.get(changed[0]!.name)}, now ${changed[0]!.checksum}). Clients may already have applied the old SQL, ` +
          `so it is not overwritten: restore the migration and put the change in a new migration.`,
        { migrations: changed.map((migration) => migration.name) },
      );
    }
    const result: CatalogResult = { inserted: [], unchanged: [] };
    for (const migration of migrations) {
      if (existing.has(migration.name)) {
        result.unchanged.push(migration.name);
        continue;
      }
      await client.query(
        `INSERT INTO client_migration ("migrationName", "timestamp", "upQueries", "downQueries", checksum) VALUES ($1, $2, $3, $4, $5)`,
        [migration.name, migration.timestamp, JSON.stringify(migration.up), JSON.stringify(migration.down), migration.checksum],
      );
      result.inserted.push(migration.name);
    }
    await markServerApplied(client);
    return result;
  }
}

/** `appliedAt` of a catalog row = when the server itself applied that migration (NULL if it has not). */
export async function markServerApplied(client: pg.ClientBase): Promise<void> {
  const typeorm = await client.query(`SELECT to_regclass($1) AS name`, [TYPEORM_MIGRATIONS_TABLE]);
  if (!typeorm.rows[0].name) return;
  await client.query(
    `UPDATE client_migration SET "appliedAt" = CASE
       WHEN EXISTS (SELECT 1 FROM ${TYPEORM_MIGRATIONS_TABLE} m WHERE m.name = "migrationName") THEN coalesce("appliedAt", now())
     END`,
  );
}

/**
 * The migrations the server applied, in order, as clients apply them: what a session offers a
 * client in its welcome.
 */
export async function readCatalog(db: Pick<pg.ClientBase, 'query'>): Promise<ExtractedMigration[]> {
  const result = await db.query<ExtractedMigration & { timestamp: string }>(
    `SELECT "migrationName" AS name, "timestamp", "upQueries" AS up, "downQueries" AS down, checksum
       FROM client_migration WHERE "appliedAt" IS NOT NULL ORDER BY "timestamp"`,
  );
  return result.rows.map((row) => ({ ...row, timestamp: Number(row.timestamp) }));
}

/** Drops one migration's row (one the server has not applied); nothing when the catalog does not exist yet. */
export async function removeFromCatalog(client: pg.ClientBase, name: string): Promise<void> {
  const exists = await client.query(`SELECT to_regclass('client_migration') AS name`);
  if (exists.rows[0].name) await client.query(`DELETE FROM client_migration WHERE "migrationName" = $1`, [name]);
}
