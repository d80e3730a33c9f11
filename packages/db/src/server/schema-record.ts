import type pg from 'pg';
import { addColumnIfMissing } from './ddl';
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
export async function storeSchema(client: pg.ClientBase, tables: SyncedTable[], version: string, change: { applied?: string[]; reverted?: string[] } = {}): Promise<void> {
  await createSchemaTable(client);
  // `reverted`: migrations the server applied once and reverted since (clients that applied them roll them back); running one again takes it off.
  await client.query(
    `INSERT INTO ${SCHEMA_TABLE} (version, tables, reverted) VALUES ($1, $2, $4)
     ON CONFLICT (singleton) DO UPDATE SET version = EXCLUDED.version, tables = EXCLUDED.tables, stored_at = now(),
       reverted = (SELECT coalesce(array_agg(DISTINCT name), '{}') FROM unnest(${SCHEMA_TABLE}.reverted || $4::text[]) name WHERE NOT name = ANY($3::text[]))`,
    [version, JSON.stringify(tables), change.applied ?? [], change.reverted ?? []],
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
  await addColumnIfMissing(client, SCHEMA_TABLE, 'reverted', `text[] NOT NULL DEFAULT '{}'`);
}

export interface RecordedSchema {
  version: string;
  tables: SyncedTable[];
  /** Migrations the server reverted (see storeSchema). */
  reverted: string[];
}

/** The stored schema, or undefined before the first migration run that recorded one. */
export async function readSchema(db: Pick<pg.ClientBase, 'query'>): Promise<RecordedSchema | undefined> {
  const exists = await db.query<{ name: string | null }>(`SELECT to_regclass('walsync_schema')::text AS name`);
  if (!exists.rows[0]?.name) return undefined;
  const result = await db.query<RecordedSchema>(`SELECT version, tables, reverted FROM ${SCHEMA_TABLE}`);
  return result.rows[0];
}
