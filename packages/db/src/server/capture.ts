import type pg from 'pg';
import { WalsyncError } from '../errors';
import { quoteIdent as quote } from '../rules/sql';
import { HLC_VARIABLES, hlcAfterPlpgsql } from '../schema/hlc';
import type { SyncedTable } from '../schema/tables';
import { TYPEORM_MIGRATIONS_TABLE } from './data-source';
import { SCHEMA_TABLE, createSchemaTable } from './schema-record';

/** Columns whose change is not a write of the row's data (the stamp sets them). */
const UNCLOCKED = ['created_at', 'updated_at', 'version', 'hlc', 'column_hlcs', 'origin_client_id'];

/** The publication the replicator reads: every synced table, TypeORM's migrations table (its rows mark schema versions in WAL order) and walsync_schema (the synced tables a migration run recorded). */
export const PUBLICATION = 'walsync';

/**
 * What capture needs of the database besides the tables: a synced table's every write stamped
 * (version, updated_at; an HLC for writes from outside walsync), and the publication over all of
 * them. Idempotent; run in the same transaction as the migrations that change the synced tables
 * (`runServerMigrations`) and at every server start, so a table is never written without being
 * captured. Refuses (CAPTURE_NOT_READY) a synced table that would lose deletes (see assertCaptureReady).
 *
 * @example
 *   await client.query('BEGIN'); … migrations …; await installCapture(client, tables); await client.query('COMMIT');
 */
export async function installCapture(client: pg.ClientBase, tables: SyncedTable[], options: { check?: boolean } = {}): Promise<void> {
  // A revert may go back to a schema capture cannot serve fully (before a table got its replica identity): it is not refused.
  if (options.check !== false) await assertCaptureReady(client, tables);
  // Every write to a synced table: version and updated_at move on update; a write that did not come
  // through walsync (no walsync.client_id in the transaction, or made by another trigger) gets a server HLC (the wall clock, but
  // never before the HLC of the row it overwrites, so it orders after everything it could have seen)
  // and no origin client.
  await client.query(`
    CREATE OR REPLACE FUNCTION walsync_stamp_row() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
      previous text;
      old_row jsonb;
      new_row jsonb;
      clocks jsonb;
      ${HLC_VARIABLES}
    BEGIN
      IF TG_OP = 'UPDATE' THEN
        NEW.version := OLD.version + 1;
        NEW.updated_at := now();
        NEW.created_at := OLD.created_at;
      END IF;
      -- A row a trigger wrote (pg_trigger_depth() > 1: a derived column kept by the schema, as
      -- comment.project_id follows its task) is the server's change even inside a client's write:
      -- that client did not write it, and must receive it like any other client.
      IF coalesce(current_setting('walsync.client_id', true), '') = '' OR pg_trigger_depth() > 1 THEN
        previous := CASE WHEN TG_OP = 'UPDATE' THEN OLD.hlc END;
        ${hlcAfterPlpgsql('previous', "'server'", 'NEW.hlc')}
        NEW.origin_client_id := NULL;
        -- Column clocks (where the schema has them): what the statement changed is written at NEW.hlc,
        -- every other column keeps the clock it had (rules/column-clocks.ts).
        IF TG_OP = 'UPDATE' AND to_jsonb(OLD) ? 'column_hlcs' THEN
          old_row := to_jsonb(OLD);
          new_row := to_jsonb(NEW);
          SELECT coalesce(jsonb_object_agg(o.key, clock), '{}') INTO clocks
            FROM jsonb_each(old_row) o, coalesce(old_row -> 'column_hlcs' ->> o.key, old_row ->> 'hlc') AS clock
           WHERE o.key <> ALL (ARRAY[${UNCLOCKED.map((name) => `'${name}'`).join(', ')}])
             AND o.value IS NOT DISTINCT FROM new_row -> o.key AND clock IS DISTINCT FROM NEW.hlc;
          NEW := jsonb_populate_record(NEW, jsonb_build_object('column_hlcs', clocks));
        ELSIF TG_OP = 'INSERT' AND to_jsonb(NEW) ? 'column_hlcs' THEN
          NEW := jsonb_populate_record(NEW, '{"column_hlcs": {}}'::jsonb);
        END IF;
      END IF;
      RETURN NEW;
    END $$`);
  // Each step below takes a table lock only when something is missing (see ./ddl.ts): at a server start
  // nothing is, and the tables are being written.
  const stamped = await client.query<{ name: string }>(
    `SELECT c.relname AS name FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
      WHERE t.tgname = 'walsync_stamp' AND t.tgfoid = 'walsync_stamp_row'::regproc AND t.tgtype = $1 AND t.tgenabled = 'O' AND c.relnamespace = current_schema()::regnamespace`,
    [STAMP_TRIGGER_TYPE],
  );
  const has = new Set(stamped.rows.map((row) => row.name));
  for (const table of tables.filter((each) => !has.has(each.name))) {
    await client.query(`CREATE OR REPLACE TRIGGER walsync_stamp BEFORE INSERT OR UPDATE ON ${quote(table.name)} FOR EACH ROW EXECUTE FUNCTION walsync_stamp_row()`);
  }
  const identity = await client.query<{ identity: string }>(`SELECT relreplident::text AS identity FROM pg_class WHERE oid = to_regclass($1)`, [quote(TYPEORM_MIGRATIONS_TABLE)]);
  if (identity.rows[0]?.identity !== 'f') await client.query(`ALTER TABLE ${quote(TYPEORM_MIGRATIONS_TABLE)} REPLICA IDENTITY FULL`);
  await createSchemaTable(client);
  const wanted = [...tables.map((table) => table.name), TYPEORM_MIGRATIONS_TABLE, SCHEMA_TABLE];
  const published = wanted.map(quote).join(', ');
  const exists = await client.query(`SELECT 1 FROM pg_publication WHERE pubname = $1`, [PUBLICATION]);
  if (!exists.rowCount) return void (await client.query(`CREATE PUBLICATION ${quote(PUBLICATION)} FOR TABLE ${published}`));
  const current = await client.query<{ name: string }>(`SELECT tablename AS name FROM pg_publication_tables WHERE pubname = $1 AND schemaname = current_schema()`, [PUBLICATION]);
  const same = current.rows.length === wanted.length && current.rows.every((row) => wanted.includes(row.name));
  if (!same) await client.query(`ALTER PUBLICATION ${quote(PUBLICATION)} SET TABLE ${published}`);
}

/** pg_trigger.tgtype of `BEFORE INSERT OR UPDATE … FOR EACH ROW`: ROW 1 | BEFORE 2 | INSERT 4 | UPDATE 16. */
const STAMP_TRIGGER_TYPE = 1 | 2 | 4 | 16;

/**
 * Refuses synced tables capture cannot serve: without REPLICA IDENTITY FULL a hard DELETE reaches
 * the WAL with the key only, so the change has no scope and no client would ever receive it. The
 * message names the statement to add (`yarn migration:generate` adds it for a new synced table).
 */
export async function assertCaptureReady(client: Pick<pg.ClientBase, 'query'>, tables: SyncedTable[]): Promise<void> {
  const result = await client.query<{ name: string; identity: string | null }>(
    `SELECT t.name, c.relreplident::text AS identity FROM unnest($1::text[]) AS t(name) LEFT JOIN pg_class c ON c.oid = to_regclass(quote_ident(t.name))`,
    [tables.map((table) => table.name)],
  );
  const missing = result.rows.filter((row) => row.identity === null).map((row) => row.name);
  if (missing.length > 0) {
    throw new WalsyncError('CAPTURE_NOT_READY', `the synced table(s) ${missing.join(', ')} do not exist in the database; run the migrations that create them ("yarn migration:run")`, { tables: missing });
  }
  const partial = result.rows.filter((row) => row.identity !== 'f').map((row) => row.name);
  if (partial.length > 0) {
    throw new WalsyncError(
      'CAPTURE_NOT_READY',
      `the synced table(s) ${partial.join(', ')} lack REPLICA IDENTITY FULL, so a DELETE of their rows would reach no client. ` +
        `Add to a migration: ${partial.map((name) => `ALTER TABLE ${quote(name)} REPLICA IDENTITY FULL`).join('; ')} (yarn migration:generate adds it).`,
      { tables: partial },
    );
  }
}
