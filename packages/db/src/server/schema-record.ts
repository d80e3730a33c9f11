import type pg from 'pg';
import type { SyncedTable } from '../schema/tables';

/** The channel a migration run notifies (at commit) so every running server reloads the schema. */
export const SCHEMA_CHANNEL = 'walsync_schema';
export const SCHEMA_TABLE = 'walsync_schema';

/**
 * The schema the servers serve, as data: the latest migration and the synced tables (columns, keys,
 * scope) of the build that applied it. Written by `runServerMigrations` in the migrations'
 * transaction; a running server reloads it when notified, so a new synced table or column is
 * captured, validated and served without a restart.
 */
export async function storeSchema(client: pg.ClientBase, tables: SyncedTable[], version: string): Promise<void> {
  await createSchemaTable(client);
  await client.query(
    `INSERT INTO ${SCHEMA_TABLE} (version, tables) VALUES ($1, $2)
     ON CONFLICT (singleton) DO UPDATE SET version = EXCLUDED.version, tables = EXCLUDED.tables, stored_at = now()`,
    [version, JSON.stringify(tables)],
  );
  await client.query(`SELECT pg_notify($1, $2)`, [SCHEMA_CHANNEL, version]);
}

/** The table storeSchema writes (published, so the replicator reads its rows in WAL order). */
export async function createSchemaTable(client: Pick<pg.ClientBase, 'query'>): Promise<void> {
  await client.query(`CREATE TABLE IF NOT EXISTS ${SCHEMA_TABLE} (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    version text NOT NULL,
    tables jsonb NOT NULL,
    stored_at timestamptz NOT NULL DEFAULT now()
  )`);
}

/** The stored schema, or undefined before the first migration run that recorded one. */
export async function readSchema(db: Pick<pg.ClientBase, 'query'>): Promise<{ version: string; tables: SyncedTable[] } | undefined> {
  const exists = await db.query<{ name: string | null }>(`SELECT to_regclass('walsync_schema')::text AS name`);
  if (!exists.rows[0]?.name) return undefined;
  const result = await db.query<{ version: string; tables: SyncedTable[] }>(`SELECT version, tables FROM ${SCHEMA_TABLE}`);
  return result.rows[0];
}
