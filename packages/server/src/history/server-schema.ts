import { PUBLICATION, SCHEMA_TABLE, type SyncedTable, TYPEORM_MIGRATIONS_TABLE, WalsyncError, addColumnIfMissing, createIndexIfMissing, installCapture } from '@walsync/db/server';
import { PG_ERROR } from '../connection';
import { RUNNING_TABLE } from './change-history';
import type pg from 'pg';

export { PUBLICATION };
export const CLIENT_MESSAGE_PREFIX = 'walsync.client';
/** A non-transactional message a snapshot writes to WAL: capture confirms it at once, so the snapshot learns when history reaches it. */
export const FENCE_MESSAGE_PREFIX = 'walsync.fence';
/** TypeORM's migrations table is published too: its rows tell the replicator the schema version in WAL order. */
export const MIGRATIONS_TABLE = TYPEORM_MIGRATIONS_TABLE;
/** The synced tables a migration run recorded, published too: the replicator follows them in WAL order. */
export { SCHEMA_TABLE };

/**
 * The server-only part of the database, next to the shared schema: the permanent change history,
 * write receipts (idempotency), and capture (the stamp trigger and the publication, from
 * @walsync/db's installCapture, which refuses a synced table that would lose deletes). Idempotent;
 * serialised across server processes with an advisory lock. Run at every start while the tables are
 * in use: each step changes a table only when something is missing, and waits for its lock at most
 * LOCK_WAIT before trying again (LOCK_ATTEMPTS times).
 */
export async function ensureServerSchema(client: pg.ClientBase, tables: SyncedTable[]): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await installServerSchema(client, tables);
    } catch (error) {
      // A step that has to change a table waits at most LOCK_WAIT for its lock, and then gives the
      // queue back (capture and the sessions read and write those tables) and tries again.
      if ((error as { code?: string }).code !== PG_ERROR.lockNotAvailable || attempt >= LOCK_ATTEMPTS) throw error;
      await new Promise((resolve) => setTimeout(resolve, 250 + Math.random() * 750));
    }
  }
}

/** How long a schema step at start waits for a table lock, and how often it tries. */
const LOCK_WAIT = '2s';
const LOCK_ATTEMPTS = 30;

async function installServerSchema(client: pg.ClientBase, tables: SyncedTable[]): Promise<void> {
  await client.query('BEGIN');
  try {
    await client.query(`SELECT pg_advisory_xact_lock(hashtext('walsync.server_schema'))`);
    await client.query(`SET LOCAL lock_timeout = '${LOCK_WAIT}'`);
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
    await createIndexIfMissing(client, 'change_history_scope', `CREATE INDEX IF NOT EXISTS change_history_scope ON change_history (scope_id, commit_lsn, op_index)`);
    // A row moved to another workspace: the one it left (only such moves have it).
    await addColumnIfMissing(client, 'change_history', 'old_scope_id', 'uuid');
    await createIndexIfMissing(
      client,
      'change_history_old_scope',
      `CREATE INDEX IF NOT EXISTS change_history_old_scope ON change_history (old_scope_id, commit_lsn, op_index) WHERE old_scope_id IS NOT NULL`,
    );
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
    // Transactions capture stored while Postgres still showed them running (see RUNNING_TABLE).
    await client.query(`
      CREATE TABLE IF NOT EXISTS ${RUNNING_TABLE} (
        xid bigint PRIMARY KEY,
        commit_lsn bigint NOT NULL
      )`);
    await installCapture(client, tables);
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK');
    throw error;
  }
}

/** The oldest Postgres walsync runs on: pgoutput's logical messages (a write's client id) came in 14. */
const MIN_SERVER_VERSION = 140000;

/**
 * Refuses, before anything is created, a Postgres that cannot feed capture: older than 14, or not
 * set up for logical decoding (a stock Postgres runs with `wal_level = replica`). Each problem is
 * named with its fix; without this check the server would stop at its replication slot with
 * Postgres' own words, after the migrations had run.
 *
 * @example
 *   await assertCaptureReady(pool); // throws WalsyncError CAPTURE_NOT_READY
 */
export async function assertCaptureReady(client: Pick<pg.ClientBase, 'query'>): Promise<void> {
  const { rows } = await client.query<{ version: number; shown: string; wal_level: string; slots: number; senders: number }>(
    `SELECT current_setting('server_version_num')::int AS version, current_setting('server_version') AS shown,
            current_setting('wal_level') AS wal_level, current_setting('max_replication_slots')::int AS slots,
            current_setting('max_wal_senders')::int AS senders`,
  );
  const settings = rows[0]!;
  const problems: string[] = [];
  if (settings.version < MIN_SERVER_VERSION) problems.push(`it is PostgreSQL ${settings.shown}; walsync needs 14 or newer`);
  if (settings.wal_level !== 'logical') {
    problems.push(`wal_level is ${settings.wal_level}; walsync reads changes by logical decoding: run ALTER SYSTEM SET wal_level = logical and restart Postgres (on a managed service, turn its logical replication setting on)`);
  }
  if (settings.slots < 1) problems.push('max_replication_slots is 0; walsync keeps one slot: set it to at least 1 (ALTER SYSTEM SET max_replication_slots = 10) and restart Postgres');
  if (settings.senders < 1) problems.push('max_wal_senders is 0; capture streams over one: set it to at least 1 (ALTER SYSTEM SET max_wal_senders = 10) and restart Postgres');
  if (problems.length === 0) return;
  throw new WalsyncError('CAPTURE_NOT_READY', `this Postgres cannot feed walsync's capture, and nothing was changed in it: ${problems.join('; ')}.`, { ...settings });
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
