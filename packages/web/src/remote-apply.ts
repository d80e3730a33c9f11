import type { PGliteInterface, Transaction } from '@electric-sql/pglite';
import { type ChangeResult, type Row, type StreamChange, type SyncedTable, latestPerKey, rowKey, quoteIdent as quote, quoteLiteral as literal } from '@walsync/db/browser';

/** Stores the replica's position `value` (an SQL expression). */
const positionSql = (value: string) => `INSERT INTO walsync_state VALUES ('position', ${value}) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value`;

/**
 * Writes the server's rows into PGlite. Every statement runs with `walsync.applying = on`, so
 * nothing here is captured into the outbox, and a row with unsent local changes keeps them: the
 * server's answer to those changes will bring the row up to date.
 *
 * The two paths that run for every message once a client is live — a changes batch, and the answer
 * to a push — are PL/pgSQL functions generated from the synced tables (`installSql`): one statement,
 * so one implicit transaction, with plans PL/pgSQL prepares once per connection. Sent as separate
 * statements they cost PGlite about six round trips and a fresh plan each, 3.4 ms a message.
 */
export class RemoteApply {
  private readonly tables: Map<string, SyncedTable>;

  constructor(readonly syncedTables: SyncedTable[]) {
    this.tables = new Map(syncedTables.map((table) => [table.name, table]));
  }

  /**
   * Whether this build syncs `name`. The server may send rows of tables a newer build added (this
   * replica applied their migration, but its build has no capture or apply code for them): those are
   * skipped, and the position moves past them; a later build that syncs them re-snapshots.
   */
  syncs(name: string): boolean {
    return this.tables.has(name);
  }

  private table(name: string): SyncedTable {
    const table = this.tables.get(name);
    if (!table) throw new Error(`the server sent rows of "${name}", which this client does not sync`);
    return table;
  }

  /** An outbox entry exists for the row `alias` (a record with the table's columns). */
  private pendingWrite(table: SyncedTable, alias: string): string {
    return `EXISTS (SELECT 1 FROM walsync_outbox o WHERE o.table_name = ${literal(table.name)} AND o.pk = ${this.key(table, alias)})`;
  }

  /** The rows of a jsonb array `json` as records of the table. */
  private records(table: SyncedTable, json: string): string {
    return `jsonb_populate_recordset(NULL::${quote(table.name)}, ${json})`;
  }

  private key(table: SyncedTable, alias: string): string {
    return `jsonb_build_object(${table.primaryKey.map((name) => `'${name}', ${alias}.${quote(name)}`).join(', ')})`;
  }

  /**
   * A plain delete of the rows with the keys in `source` (a record set with the table's columns),
   * unless the replica holds them newer than the version they were deleted or left at (an answer to
   * a later write of this client, which kept the row, came first). With `pending`, rows with unsent
   * writes stay too, their delete set aside (deferred) for the answer.
   */
  private deleteSql(table: SyncedTable, source: string, options: { pending: boolean }): string {
    const match = table.primaryKey.map((column) => `t.${quote(column)} = r.${quote(column)}`).join(' AND ');
    const remove = `DELETE FROM ${quote(table.name)} t USING r WHERE ${match} AND (r.version IS NULL OR t.version <= r.version)`;
    if (!options.pending) return `WITH r AS (SELECT * FROM ${source}) ${remove}`;
    return `WITH r AS MATERIALIZED (SELECT * FROM ${source}),
                 held AS (${this.deferSql(table, 'NULL::jsonb', 'coalesce(r.version, 0)', 'r', 'r')})
            ${remove} AND NOT ${this.pendingWrite(table, 'r')}`;
  }

  /** Sets the server's row `row` (null: deleted) aside for a row with unsent local writes, unless a newer one is there. */
  private deferSql(table: SyncedTable, row: string, version: string, from: string, alias: string): string {
    return `INSERT INTO walsync_deferred (table_name, pk, row, version)
              SELECT ${literal(table.name)}, ${this.key(table, alias)}, ${row}, ${version} FROM ${from} WHERE ${this.pendingWrite(table, alias)}
              ON CONFLICT (table_name, pk) DO UPDATE SET row = EXCLUDED.row, version = EXCLUDED.version WHERE walsync_deferred.version <= EXCLUDED.version`;
  }

  /**
   * Upserts `source` rows. With `pending`, a row with unsent local writes is deferred instead (its
   * last answer applies the newer of the two); with `newerOnly`, a row never replaces a newer
   * version: a change the stream delivers after this client's own answer brought the row further on.
   */
  private upsertSql(table: SyncedTable, source: string, options: { pending: boolean; newerOnly: boolean }): string {
    const columns = table.columns.map((column) => quote(column.name));
    const name = quote(table.name);
    const update = `ON CONFLICT (${table.primaryKey.map(quote).join(', ')}) DO UPDATE SET (${columns.join(', ')}) = ROW(${columns.map((column) => `EXCLUDED.${column}`).join(', ')})
                    ${options.newerOnly ? `WHERE ${name}.version <= EXCLUDED.version` : ''}`;
    if (!options.pending) return `INSERT INTO ${name} SELECT * FROM ${source} ${update}`;
    return `WITH incoming AS MATERIALIZED (SELECT * FROM ${source}),
                 held AS (${this.deferSql(table, 'to_jsonb(r)', 'r.version', 'incoming r', 'r')})
            INSERT INTO ${name} SELECT * FROM incoming r WHERE NOT ${this.pendingWrite(table, 'r')} ${update}`;
  }

  /**
   * Whole rows as a JSON array, e.g. a snapshot page (unique keys); with `newerOnly`, a row never replaces a newer
   * version. An empty outbox spares the per-row pending check.
   */
  async upsertRows(tx: Transaction, tableName: string, rowsJson: string, options: { newerOnly: boolean }): Promise<void> {
    const table = this.table(tableName);
    const pending = (await tx.query<{ any: boolean }>(`SELECT EXISTS (SELECT 1 FROM walsync_outbox) AS any`)).rows[0]!.any;
    await tx.query(this.upsertSql(table, this.records(table, '$1::jsonb'), { pending, newerOnly: options.newerOnly }), [rowsJson]);
  }

  /** Whether any synced table holds a row (a replacing snapshot into an empty database has nothing to remove). */
  async hasRows(tx: Transaction): Promise<boolean> {
    const checks = this.syncedTables.map((table) => `EXISTS (SELECT 1 FROM ${quote(table.name)})`).join(' OR ');
    return (await tx.query<{ any: boolean }>(`SELECT (${checks}) AS any`)).rows[0]!.any;
  }

  /**
   * The functions the live paths call (see the class comment), for the local schema to install:
   * - `walsync_apply_changes(runs, newest_hlc, position)`: a changes batch as runs of one kind on one
   *   table (see `applyChanges`), then the clock and the position, all or nothing;
   * - `walsync_settle(answers)`: the server's answers to a push (see `settle`).
   */
  installSql(): string {
    const applyCases = this.syncedTables.flatMap((table) => [
      `WHEN ${literal(`${table.name}:upsert`)} THEN ${this.upsertSql(table, this.records(table, `walsync_run -> 'rows'`), { pending: true, newerOnly: true })};`,
      `WHEN ${literal(`${table.name}:delete`)} THEN ${this.deleteSql(table, this.records(table, `walsync_run -> 'rows'`), { pending: true })};`,
      `WHEN ${literal(`${table.name}:truncate`)} THEN DELETE FROM ${quote(table.name)};`,
    ]);
    const settleCases = this.syncedTables.map((table) => {
      const match = table.primaryKey.map((column) => `${quote(column)}::text = walsync_answer -> 'pk' ->> ${literal(column)}`).join(' AND ');
      return `WHEN ${literal(table.name)} THEN
            IF walsync_forbidden AND NOT walsync_streamed AND EXISTS (SELECT 1 FROM ${quote(table.name)} t WHERE ${match} AND ${heldWorkspace(`t.${quote(table.scope)}::text`)}) THEN
              NULL; -- the replica's scope is behind the server's: its scope_removed takes the row, if it comes
            ELSIF walsync_gone THEN
              IF walsync_row IS NOT NULL AND ${heldWorkspace(`walsync_row ->> ${literal(table.scope)}`)} THEN
                ${this.upsertSql(table, this.records(table, `jsonb_build_array(walsync_row)`), { pending: false, newerOnly: true })};
              END IF;
            ELSIF walsync_row IS NOT NULL THEN ${this.upsertSql(table, this.records(table, `jsonb_build_array(walsync_row)`), { pending: false, newerOnly: false })};
            ELSE DELETE FROM ${quote(table.name)} WHERE ${match}; END IF;`;
    });
    return `
    CREATE OR REPLACE FUNCTION walsync_apply_changes(walsync_runs jsonb, walsync_newest text, walsync_position text) RETURNS void LANGUAGE plpgsql AS $walsync$
    DECLARE walsync_run jsonb;
    BEGIN
      PERFORM set_config('walsync.applying', 'on', true);
      FOR walsync_run IN SELECT value FROM jsonb_array_elements(walsync_runs) LOOP
        CASE walsync_run ->> 'key'
          ${applyCases.join('\n          ')}
          ELSE RAISE EXCEPTION 'the server sent rows of %, which this client does not sync', walsync_run ->> 'key';
        END CASE;
      END LOOP;
      PERFORM walsync_observe_hlc(walsync_newest);
      ${positionSql('walsync_position')};
    END $walsync$;

    CREATE OR REPLACE FUNCTION walsync_settle(walsync_answers jsonb) RETURNS void LANGUAGE plpgsql AS $walsync$
    DECLARE
      walsync_answer jsonb;
      walsync_row jsonb;
      walsync_held jsonb;
      walsync_held_version integer;
      walsync_gone boolean;
      walsync_forbidden boolean;
      walsync_streamed boolean;
    BEGIN
      PERFORM set_config('walsync.applying', 'on', true);
      FOR walsync_answer IN SELECT value FROM jsonb_array_elements(walsync_answers) LOOP
        IF walsync_answer ->> 'error' IS NOT NULL THEN
          UPDATE walsync_outbox SET attempts = attempts + 1, last_error = walsync_answer ->> 'error' WHERE change_id = (walsync_answer ->> 'changeId')::uuid;
          CONTINUE;
        END IF;
        DELETE FROM walsync_outbox WHERE change_id = (walsync_answer ->> 'changeId')::uuid;
        -- An answer to a change no longer in the outbox (answered already, or dropped with its
        -- workspace while it was on its way) may be older than what the replica got since (the
        -- snapshot of the workspace regained): it only brings a row of a workspace the replica holds
        -- further, never back. It still counts: applied after that snapshot was read, the write
        -- reaches the replica only so (the stream skips a client's own changes).
        walsync_gone := NOT FOUND;
        CONTINUE WHEN EXISTS (SELECT 1 FROM walsync_outbox WHERE table_name = walsync_answer ->> 'table' AND pk = walsync_answer -> 'pk');
        walsync_row := nullif(walsync_answer -> 'row', 'null'::jsonb);
        walsync_forbidden := coalesce((walsync_answer ->> 'forbidden')::boolean, false) AND NOT walsync_gone;
        walsync_streamed := false;
        IF NOT walsync_gone THEN
          -- What the stream brought of the row while the write was on its way (held back for it) is
          -- the server's word at a later position: it applies, refused write or not (a row moved
          -- out of the workspace leaves; kept, nothing would ever take it).
          DELETE FROM walsync_deferred WHERE table_name = walsync_answer ->> 'table' AND pk = walsync_answer -> 'pk' RETURNING row, version INTO walsync_held, walsync_held_version;
          walsync_streamed := FOUND;
          IF FOUND AND (walsync_row IS NULL OR (walsync_row ->> 'version')::numeric <= walsync_held_version) THEN walsync_row := walsync_held; END IF;
        END IF;
        CASE walsync_answer ->> 'table'
          ${settleCases.join('\n          ')}
        END CASE;
      END LOOP;
    END $walsync$;`;
  }

  /**
   * A changes batch, applied in one statement with the newest HLC among its rows (for the local
   * clock) and the position it brings the replica to. Consecutive changes of one kind to one table
   * go as one run (a streamed batch is mostly such runs: a transaction's rows, or single-row writes
   * to one table); the runs keep the batch's order, so parents still come before children.
   */
  async applyChanges(db: PGliteInterface, changes: StreamChange[], position: string): Promise<void> {
    let newest: string | null = null;
    const runs = this.runs(changes);
    for (const run of runs) {
      for (const row of run.kind === 'upsert' ? run.rows : []) {
        if (typeof row.hlc === 'string' && (!newest || row.hlc > newest)) newest = row.hlc;
      }
    }
    const first = !this.appliedBefore;
    this.appliedBefore = true;
    if (first && (await this.applyAsStatements(db, runs, newest, position))) return;
    const sent = runs.map((run) => ({ key: `${run.table.name}:${run.kind}`, rows: run.rows }));
    await db.query(`SELECT walsync_apply_changes($1::jsonb, $2, $3)`, [JSON.stringify(sent), newest, position]);
  }

  /** Whether a batch was applied through this database handle yet, so on its backend (see applyAsStatements). */
  private appliedBefore = false;

  /**
   * A database handle's first batch (a returning client's catch-up, the batch a user waits for), as plain
   * statements in one transaction when no local write waits (nothing to defer, nothing to keep):
   * on a new backend, loading PL/pgSQL and planning walsync_apply_changes' statements cost about
   * 25 ms of a 40 ms apply of 500 rows; the statements alone take 15. Later batches use the function
   * (one round trip each, its plans kept). False, and nothing done, when the outbox holds a write.
   */
  private async applyAsStatements(db: PGliteInterface, runs: Run[], newest: string | null, position: string): Promise<boolean> {
    return db.transaction(async (tx) => {
      if ((await tx.query<{ any: boolean }>(`SELECT EXISTS (SELECT 1 FROM walsync_outbox) AS any`)).rows[0]!.any) return false;
      await tx.exec(`SET LOCAL walsync.applying = 'on'`);
      for (const run of runs) {
        if (run.kind === 'truncate') await tx.exec(`DELETE FROM ${quote(run.table.name)}`);
        else {
          const rows = this.records(run.table, '$1::jsonb');
          const sql = run.kind === 'upsert' ? this.upsertSql(run.table, rows, { pending: false, newerOnly: true }) : this.deleteSql(run.table, rows, { pending: false });
          await tx.query(sql, [JSON.stringify(run.rows)]);
        }
      }
      await tx.query(`SELECT walsync_observe_hlc($1)`, [newest]);
      await tx.query(positionSql('$1'), [position]);
      return true;
    });
  }

  /** Consecutive changes of one kind to one table, in the batch's order; one row per key in a run. */
  private runs(changes: StreamChange[]): Run[] {
    const result: Run[] = [];
    for (const change of changes) {
      if (!this.syncs(change.table)) continue;
      const table = this.table(change.table);
      const kind = change.op === 'truncate' ? 'truncate' : change.op === 'delete' ? 'delete' : 'upsert';
      const row = kind === 'delete' ? change.old : kind === 'upsert' ? change.data : undefined;
      if (kind !== 'truncate' && !row) continue;
      const last = result.at(-1);
      if (last && last.table === table && last.kind === kind && kind !== 'truncate') last.rows.push(row!);
      else result.push({ table, kind, rows: row ? [row] : [] });
    }
    for (const run of result) run.rows = latestPerKey(run.table.primaryKey, run.rows);
    // A row removed and back again within the batch (moved out of what the client holds, and in again)
    // is not deleted first: the delete would take its children along (ON DELETE CASCADE), among them
    // rows the stream never sends again — this client's own writes, stored from their answers ahead
    // of the stream (a comment written on the task after both moves, answered before the stream brought them).
    const upsertedLater = new Map<SyncedTable, Set<string>>();
    for (const run of [...result].reverse()) {
      const keys = upsertedLater.get(run.table) ?? new Set<string>();
      upsertedLater.set(run.table, keys);
      if (run.kind === 'delete') run.rows = run.rows.filter((row) => !keys.has(rowKey(run.table.primaryKey, row)));
      else for (const row of run.rows) keys.add(rowKey(run.table.primaryKey, row));
    }
    return result.filter((run) => run.kind === 'truncate' || run.rows.length > 0);
  }

  /** The user left a workspace: its rows go (children first), and the unsent writes to them (returned). */
  async removeScope(tx: Transaction, workspaceId: string): Promise<DroppedWrite[]> {
    const dropped: DroppedWrite[] = [];
    for (const table of [...this.syncedTables].reverse()) {
      // Unsent writes to the workspace's rows go with them: the server would refuse them now.
      const unsent = await tx.query<DroppedWrite>(
        `DELETE FROM walsync_outbox o USING ${quote(table.name)} t WHERE o.table_name = ${literal(table.name)} AND o.pk = ${this.key(table, 't')} AND t.${quote(table.scope)} = $1
           RETURNING o.change_id AS "changeId", o.table_name AS "table", o.pk`,
        [workspaceId],
      );
      for (const write of unsent.rows) dropped.push(write);
      await tx.query(
        `DELETE FROM walsync_deferred d USING ${quote(table.name)} t WHERE d.table_name = ${literal(table.name)} AND d.pk = ${this.key(table, 't')} AND t.${quote(table.scope)} = $1`,
        [workspaceId],
      );
      await tx.query(`DELETE FROM ${quote(table.name)} WHERE ${quote(table.scope)} = $1`, [workspaceId]);
    }
    return dropped;
  }

  /** After a replacing snapshot: rows the server no longer has (and that have no unsent writes) go. */
  async removeUnseen(tx: Transaction): Promise<void> {
    for (const table of [...this.syncedTables].reverse()) {
      const key = table.primaryKey.map((name) => `'${name}', t.${quote(name)}`).join(', ');
      await tx.query(
        `DELETE FROM ${quote(table.name)} t WHERE NOT EXISTS (SELECT 1 FROM walsync_snapshot_seen s WHERE s.table_name = ${literal(table.name)} AND s.pk = jsonb_build_object(${key}))
           AND NOT ${this.pendingWrite(table, 't')}`,
      );
    }
  }

  /** Remembers the keys of a snapshot page, so removeUnseen() knows what the server still has. */
  async markSeen(tx: Transaction, tableName: string, rowsJson: string): Promise<void> {
    const table = this.table(tableName);
    const key = table.primaryKey.map((name) => `'${name}', r -> '${name}'`).join(', ');
    await tx.query(
      `INSERT INTO walsync_snapshot_seen SELECT $1, jsonb_build_object(${key}) FROM jsonb_array_elements($2::jsonb) r ON CONFLICT DO NOTHING`,
      [table.name, rowsJson],
    );
  }

  /**
   * The server's answers to a push, in one statement: each answered change leaves the outbox (an
   * error stays, with its message). Once a row has no other unsent write, it becomes the server's
   * row: the answer's, or a newer one the stream delivered meanwhile (deferred); null or a deferred
   * delete removes it. A write refused as outside the user's workspaces drops its row too — unless
   * the replica holds the row's workspace: then the replica's scope is behind (the server's session
   * answers such a refusal only after it said `scope_removed`, which takes the row; see SyncSession.write).
   */
  async settle(db: PGliteInterface | Transaction, answers: Array<{ changeId: string; table: string; pk: Row; result: ChangeResult }>): Promise<void> {
    const rows = answers.map(({ changeId, table, pk, result }) => {
      // Outside the user's scope on the server: not the user's data, so the write and its row go (reported as an error event)
      // — unless the replica holds the row's workspace (see `settle`).
      if (result.status === 'error' && result.code === 'forbidden_scope') return { changeId, table, pk, row: null, forbidden: true };
      if (result.status === 'error') return { changeId, error: `${result.code}: ${result.message}` };
      this.table(table);
      return { changeId, table, pk, row: result.row };
    });
    await db.query(`SELECT walsync_settle($1::jsonb)`, [JSON.stringify(rows)]);
  }
}

/** Whether the replica holds the workspace `id` (a text expression); true for a replica from before its workspaces were recorded. */
function heldWorkspace(id: string): string {
  return `coalesce((SELECT value::jsonb ? (${id}) FROM walsync_state WHERE key = 'workspaces'), true)`;
}

interface Run {
  table: SyncedTable;
  kind: 'upsert' | 'delete' | 'truncate';
  rows: Row[];
}

/** A local write that was never sent and never will be (its workspace is no longer the user's). */
export interface DroppedWrite {
  changeId: string;
  table: string;
  pk: Record<string, unknown>;
}
