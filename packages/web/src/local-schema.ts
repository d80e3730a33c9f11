import type { PGliteInterface, Transaction } from '@electric-sql/pglite';
import { HLC_VARIABLES, HLC_WALL_PLPGSQL, SERVER_MANAGED_COLUMNS, type SyncedTable, appliedSchemaVersion, hlcAfterSql, quoteIdent as quote, quoteLiteral, sha256Hex } from '@walsync/db/browser';
import { RemoteApply } from './remote-apply';

/**
 * The columns of `table` a local write sends: not the server-managed ones, not those the schema's
 * triggers derive, and not a column a later migration added (this replica applied it, this build
 * does not know it).
 */
export function writtenColumns(table: SyncedTable): string[] {
  return table.columns
    .map((column) => column.name)
    .filter((name) => !(SERVER_MANAGED_COLUMNS as readonly string[]).includes(name) && !table.derived?.includes(name));
}

/**
 * A trigger's condition: the write is the app's, not a remote apply (`walsync.applying = on`). As a
 * trigger's WHEN it is checked without entering PL/pgSQL: an apply's upsert fires the BEFORE trigger
 * twice a row (insert, then the conflict's update), 1,000 calls for a 500-row batch, 14–24 ms of it,
 * and on a just-started backend the function's compilation too.
 */
const LOCAL_WRITE = `current_setting('walsync.applying', true) IS DISTINCT FROM 'on'`;

/**
 * The client's own tables and triggers, beside the synced schema:
 * - `walsync_state`: client id, position, the last HLC (kept in the database, so it survives restarts);
 * - `walsync_outbox`: every local write, captured in the same transaction by triggers;
 * - `walsync_deferred`: server rows held back while the row had unsent local writes;
 * - triggers on each synced table: stamp each local write with an HLC and record it in the outbox
 *   (one BEFORE trigger), and turn a local DELETE into a tombstone. Remote applies run with `walsync.applying = on`: the triggers' WHEN skips them;
 * - `walsync_apply_changes` and `walsync_settle`: the live apply paths, generated from the synced tables (RemoteApply.installSql).
 */
export function localSchemaSql(tables: SyncedTable[]): string {
  const triggers = tables.map((table) => {
    const keys = table.primaryKey.map(quoteLiteral).join(', ');
    // The key's length, the key, then the columns this build writes.
    const captureArgs = [String(table.primaryKey.length), ...table.primaryKey, ...writtenColumns(table)].map(quoteLiteral).join(', ');
    return `
      DROP TRIGGER IF EXISTS walsync_local_write ON ${quote(table.name)};
      CREATE TRIGGER walsync_local_write BEFORE INSERT OR UPDATE ON ${quote(table.name)} FOR EACH ROW WHEN (${LOCAL_WRITE}) EXECUTE FUNCTION walsync_local_write(${captureArgs});
      DROP TRIGGER IF EXISTS walsync_tombstone ON ${quote(table.name)};
      CREATE TRIGGER walsync_tombstone BEFORE DELETE ON ${quote(table.name)} FOR EACH ROW WHEN (${LOCAL_WRITE}) EXECUTE FUNCTION walsync_tombstone(${keys});`;
  });
  return `
    CREATE TABLE IF NOT EXISTS walsync_state (key text PRIMARY KEY, value text);
    CREATE TABLE IF NOT EXISTS walsync_outbox (
      seq bigserial PRIMARY KEY,
      change_id uuid NOT NULL DEFAULT gen_random_uuid(),
      table_name text NOT NULL,
      op text NOT NULL,
      pk jsonb NOT NULL,
      data jsonb NOT NULL DEFAULT '{}',
      hlc text NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      attempts integer NOT NULL DEFAULT 0,
      last_error text
    );
    CREATE INDEX IF NOT EXISTS walsync_outbox_row ON walsync_outbox (table_name, pk);
    -- The newest server row seen for a row that had unsent local writes (so it was not applied then):
    -- when the last of those writes is answered, the newer of this and the answer's row wins.
    -- row NULL: the server deleted the row.
    CREATE TABLE IF NOT EXISTS walsync_deferred (
      table_name text NOT NULL,
      pk jsonb NOT NULL,
      row jsonb,
      version integer NOT NULL,
      PRIMARY KEY (table_name, pk)
    );

    -- Local timestamps come from walsync_state's 'hlc' (the last one this replica issued or saw), in
    -- the trigger itself: one UPDATE … RETURNING, no nested call (see walsync_local_write).
    DROP FUNCTION IF EXISTS walsync_local_hlc();

    -- The receive rule: a timestamp seen from elsewhere moves the local clock past it. Plain SQL, so
    -- an apply that calls it outside PL/pgSQL (a new backend's first batch) does not load PL/pgSQL.
    CREATE OR REPLACE FUNCTION walsync_observe_hlc(seen text) RETURNS void LANGUAGE sql AS $$
      INSERT INTO walsync_state
        SELECT 'hlc', substr(seen, 1, 23) || value FROM walsync_state WHERE key = 'client_id' AND seen ~ '^[0-9]{15}:[0-9]{6}:'
      ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value
        WHERE walsync_state.value IS NULL OR substr(EXCLUDED.value, 1, 22) > substr(walsync_state.value, 1, 22)
    $$;

    -- One BEFORE trigger per row stamps a local write and records it in the outbox, in the same
    -- transaction (a second, AFTER trigger would cost another call and another to_jsonb per write).
    -- An insert records the whole row: the push sends only the columns this build writes.
    CREATE OR REPLACE FUNCTION walsync_local_write() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
      fresh jsonb;
      stale jsonb;
      key text;
      pk jsonb := '{}';
      op text;
      data jsonb := '{}';
      stamp text;
      keys integer := TG_ARGV[0]::integer;
      ${HLC_VARIABLES}
    BEGIN
      IF TG_OP = 'INSERT' THEN
        op := 'insert';
      ELSIF OLD.deleted_at IS NULL AND NEW.deleted_at IS NOT NULL THEN
        op := 'delete';
      ELSIF OLD.deleted_at IS NOT NULL AND NEW.deleted_at IS NULL THEN
        op := 'insert';
      ELSE
        op := 'update';
        fresh := to_jsonb(NEW);
        stale := to_jsonb(OLD);
        SELECT coalesce(jsonb_object_agg(e.key, e.value), '{}') INTO data FROM jsonb_each(fresh) e
          WHERE e.key = ANY (TG_ARGV[keys + 1:]) AND stale -> e.key IS DISTINCT FROM e.value;
        -- A write that changes nothing but server-managed columns is not a change.
        IF data = '{}'::jsonb THEN RETURN NEW; END IF;
      END IF;
      ${HLC_WALL_PLPGSQL}
      UPDATE walsync_state SET value = ${hlcAfterSql('value', 'walsync_wall', 'substr(value, 24)')}
        WHERE walsync_state.key = 'hlc' RETURNING value INTO stamp;
      IF stamp IS NULL THEN
        INSERT INTO walsync_state SELECT 'hlc', ${hlcAfterSql('NULL::text', 'walsync_wall', 'value')} FROM walsync_state WHERE walsync_state.key = 'client_id'
          RETURNING value INTO stamp;
      END IF;
      NEW.hlc := stamp;
      NEW.origin_client_id := substr(stamp, 24);
      IF TG_OP = 'UPDATE' THEN
        NEW.version := OLD.version + 1;
        NEW.updated_at := now();
      END IF;
      IF op <> 'update' THEN fresh := to_jsonb(NEW); END IF;
      IF op = 'insert' THEN data := fresh; END IF;
      IF keys = 1 THEN
        pk := jsonb_build_object(TG_ARGV[1], fresh -> TG_ARGV[1]);
      ELSE
        FOREACH key IN ARRAY TG_ARGV[1:keys] LOOP pk := pk || jsonb_build_object(key, fresh -> key); END LOOP;
      END IF;
      INSERT INTO walsync_outbox (table_name, op, pk, data, hlc) VALUES (TG_TABLE_NAME, op, pk, data, stamp);
      PERFORM pg_notify('walsync_outbox', TG_TABLE_NAME);
      RETURN NEW;
    END $$;

    -- A local DELETE becomes a tombstone, as it will on the server.
    CREATE OR REPLACE FUNCTION walsync_tombstone() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
      row_json jsonb := to_jsonb(OLD);
      match text := '';
      key text;
    BEGIN
      FOREACH key IN ARRAY TG_ARGV LOOP
        match := match || CASE WHEN match = '' THEN '' ELSE ' AND ' END || format('%I::text = %L', key, row_json ->> key);
      END LOOP;
      EXECUTE format('UPDATE %I SET deleted_at = now() WHERE deleted_at IS NULL AND %s', TG_TABLE_NAME, match);
      RETURN NULL;
    END $$;

    ${new RemoteApply(tables).installSql()}
    ${triggers.join('\n')}`;
}

/**
 * Installs the local schema unless this replica already has the same SQL for the same schema version: about twenty DDL statements that would otherwise run on every connect, while
 * the app's first queries wait.
 */
export async function ensureLocalSchema(db: PGliteInterface, tables: SyncedTable[]): Promise<void> {
  const { sql, hash } = installSqlOf(tables);
  // The install SQL's own hash: any change to it (a new build, other tables) reinstalls it, and so
  // does a new schema version (a migration may have recreated a table and dropped its triggers).
  const key = `${hash}:${(await appliedSchemaVersion(db)) ?? ''}`;
  const installed = await db
    .query<{ value: string }>(`SELECT value FROM walsync_state WHERE key = 'local_schema'`)
    .then((result) => result.rows[0]?.value)
    .catch(() => undefined);
  if (installed === key) return;
  await db.transaction(async (tx) => {
    await tx.exec(sql);
    await setState(tx, 'local_schema', key);
  });
}

/** The hash of the local schema a client of this build installs for `tables` (the key ensureLocalSchema records). */
export function localSchemaHash(tables: SyncedTable[]): string {
  return installSqlOf(tables).hash;
}

/** The install SQL of a build's tables and its hash, made once per process (every connect checks them). */
const installs = new WeakMap<SyncedTable[], { sql: string; hash: string }>();
function installSqlOf(tables: SyncedTable[]): { sql: string; hash: string } {
  let install = installs.get(tables);
  if (!install) {
    const sql = localSchemaSql(tables);
    install = { sql, hash: sha256Hex(sql) };
    installs.set(tables, install);
  }
  return install;
}

/** One `walsync_state` value (null when it was never set). */
export async function readState(db: PGliteInterface | Transaction, key: string): Promise<string | null> {
  return (await db.query<{ value: string }>(`SELECT value FROM walsync_state WHERE key = $1`, [key])).rows[0]?.value ?? null;
}

/** Sets one `walsync_state` value. */
export async function setState(db: PGliteInterface | Transaction, key: string, value: string): Promise<void> {
  await db.query(`INSERT INTO walsync_state VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value`, [key, value]);
}
