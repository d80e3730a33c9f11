import { HLC_VARIABLES, type SyncedTable, hlcAfterPlpgsql, quoteIdent as quote } from '@walsync/db/server';
import type pg from 'pg';

export const PUBLICATION = 'walsync';
export const CLIENT_MESSAGE_PREFIX = 'walsync.client';
/** TypeORM's migrations table is published too: its rows tell the replicator the schema version in WAL order. */
export const MIGRATIONS_TABLE = 'migrations';

/**
 * The server-only part of the database, next to the shared schema: the permanent change history,
 * write receipts (idempotency), the trigger that stamps every write to a synced table, and the
 * publication. Idempotent; serialised across server processes with an advisory lock.
 */
export async function ensureServerSchema(client: pg.ClientBase, tables: SyncedTable[]): Promise<void> {
  await client.query('BEGIN');
  try {
    await client.query(`SELECT pg_advisory_xact_lock(hashtext('walsync.server_schema'))`);
    await client.query(`
      CREATE TABLE IF NOT EXISTS change_history (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        lsn text NOT NULL,
        commit_lsn bigint NOT NULL,
        op_index integer NOT NULL,
        table_name text NOT NULL,
        operation text NOT NULL,
        data jsonb,
        old_data jsonb,
        transaction_id text NOT NULL,
        schema_version text NOT NULL,
        "timestamp" timestamptz NOT NULL,
        metadata jsonb,
        client_id text,
        scope_id uuid,
        CONSTRAINT change_history_position UNIQUE (commit_lsn, op_index)
      )`);
    await client.query(`CREATE INDEX IF NOT EXISTS change_history_scope ON change_history (scope_id, commit_lsn, op_index)`);
    await client.query(`
      CREATE TABLE IF NOT EXISTS write_receipt (
        change_id uuid PRIMARY KEY,
        client_id text NOT NULL,
        request_hash text NOT NULL,
        result jsonb NOT NULL,
        transaction_id text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
      )`);
    await client.query(`
      CREATE TABLE IF NOT EXISTS sync_client (
        client_id text PRIMARY KEY,
        user_id uuid NOT NULL,
        schema_version text,
        acked_position text,
        acked_commit_lsn bigint,
        connected_at timestamptz NOT NULL DEFAULT now(),
        last_seen timestamptz NOT NULL DEFAULT now()
      )`);
    // What the server keeps about its history: the position up to which change_history was pruned.
    await client.query(`
      CREATE TABLE IF NOT EXISTS walsync_history_horizon (
        singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
        pruned_through bigint NOT NULL
      )`);
    // Every write to a synced table: version and updated_at move on update; a write that did not come
    // through walsync (no walsync.client_id in the transaction) gets a server HLC (the wall clock, but
    // never before the HLC of the row it overwrites, so it orders after everything it could have seen)
    // and no origin client.
    await client.query(`
      CREATE OR REPLACE FUNCTION walsync_stamp_row() RETURNS trigger LANGUAGE plpgsql AS $$
      DECLARE
        previous text;
        ${HLC_VARIABLES}
      BEGIN
        IF TG_OP = 'UPDATE' THEN
          NEW.version := OLD.version + 1;
          NEW.updated_at := now();
          NEW.created_at := OLD.created_at;
        END IF;
        IF coalesce(current_setting('walsync.client_id', true), '') = '' THEN
          previous := CASE WHEN TG_OP = 'UPDATE' THEN OLD.hlc END;
          ${hlcAfterPlpgsql('previous', "'server'", 'NEW.hlc')}
          NEW.origin_client_id := NULL;
        END IF;
        RETURN NEW;
      END $$`);
    for (const table of tables) {
      await client.query(
        `CREATE OR REPLACE TRIGGER walsync_stamp BEFORE INSERT OR UPDATE ON ${quote(table.name)} FOR EACH ROW EXECUTE FUNCTION walsync_stamp_row()`,
      );
    }
    await client.query(`ALTER TABLE ${quote(MIGRATIONS_TABLE)} REPLICA IDENTITY FULL`);
    const published = [...tables.map((table) => table.name), MIGRATIONS_TABLE].map(quote).join(', ');
    const exists = await client.query(`SELECT 1 FROM pg_publication WHERE pubname = $1`, [PUBLICATION]);
    await client.query(
      exists.rowCount ? `ALTER PUBLICATION ${quote(PUBLICATION)} SET TABLE ${published}` : `CREATE PUBLICATION ${quote(PUBLICATION)} FOR TABLE ${published}`,
    );
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK');
    throw error;
  }
}

/**
 * Creates the logical replication slot if it does not exist. Done before a server reports ready,
 * so every commit after that is captured, whichever process becomes leader. Safe against a
 * concurrent creator.
 */
export async function ensureSlot(client: pg.ClientBase, slotName: string): Promise<void> {
  try {
    await client.query(
      `SELECT pg_create_logical_replication_slot($1, 'pgoutput') WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)`,
      [slotName],
    );
  } catch (error) {
    if ((error as { code?: string }).code !== '42710') throw error;
  }
}
