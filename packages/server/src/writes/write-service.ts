import { type ChangeResult, type Row, type SyncedTable, WRITE_LIMITS, type WriteBatchResult, WriteBatchSchema, formatIssues, formatPosition, parsePosition } from '@walsync/db/server';
import pg from 'pg';
import { membershipSql } from '../auth/scope';
import { CLIENT_MESSAGE_PREFIX } from '../history/server-schema';
import { HISTORY_SEEN, type HistorySeen, type LateTransaction, awaitVisible, lateTransactions } from '../history/visibility';
import type { Metrics } from '../metrics';
import { type PreparedChange, prepareChange } from './prepare-change';
import { type KnownRow, keyOf, movedRow } from './known-rows';
import { type Receipt, decide, lockRows, plan, preparedName, refusal } from './write-statements';
import { readReferences } from './references';
import { PG_ERROR, checkout, connectionConfig } from '../connection';

/** The request as a whole is unusable (its shape, its size, its client id); no change in it was looked at. */
export class WriteRequestError extends Error {
  constructor(
    readonly code: 'invalid_batch' | 'too_large' | 'forbidden_client',
    message: string,
  ) {
    super(message);
  }
}

export interface WriteServiceOptions {
  databaseUrl: string;
  tables: SyncedTable[];
  maxClockSkewMs: number;
  /** Where answered changes and batch timings are counted (both doors: `POST /changes` and the socket). */
  metrics?: Pick<Metrics, 'writeChanges' | 'writeBatchSeconds'>;
  now?: () => number;
  onConnectionError?: (error: Error) => void;
}

/** Claims confirmed in this process: a client id never changes owner, so each is asked of the database once. */
const MAX_REMEMBERED_CLAIMS = 10_000;
/** How often a batch is run again after a deadlock or serialization failure with another batch. */
const MAX_CONFLICT_RETRIES = 5;

/**
 * The write API, the same for every door (`POST /changes` and `write` over the socket): checks the
 * request, claims its client id for the user, applies the batch in one transaction with
 * last-writer-wins by HLC, idempotently by changeId, within the user's workspaces, answers every
 * change and counts the answers.
 *
 * The transaction takes two round trips on a pipelined connection: one reads (receipts, memberships,
 * the locked rows), one writes (a statement per change that also stores its receipt, then COMMIT;
 * the statements come from ./write-statements.ts). A change the database refuses (a foreign key, a
 * bad value) is answered on its own and the batch runs again without it.
 *
 * @example
 *   const writes = new WriteService({ databaseUrl, tables, maxClockSkewMs: 60_000 });
 *   const { results } = await writes.applyBatch(userId, { clientId, changes });
 */
export class WriteService {
  private tables: Map<string, SyncedTable>;
  private readonly pool: pg.Pool;
  private readonly claims = new Map<string, string>();

  constructor(private readonly options: WriteServiceOptions) {
    this.tables = new Map(options.tables.map((table) => [table.name, table]));
    // Every read a write makes is by key (the rows it touches, the rows it references, its receipts,
    // the user's memberships), so its connections plan no sequential scan where an index serves
    // (`enable_seqscan = off`). Postgres settles on one plan per prepared statement after five runs,
    // made for the table's size then, and remakes it only after an ANALYZE: one made while `task` was
    // small read the whole table at every write once it had grown (a server starts before its users
    // write), about 2 ms more per 10,000 rows (a probe: 2.1 ms a socket write became 4.5 ms once
    // 11,000 tasks were written). Planning every run instead (`plan_cache_mode`) cost 0.3–0.4 ms a write.
    // A table with no index a read can use (the small walsync_captured_running) then costs a disabled
    // scan's 10^10, past `jit_above_cost`: a Postgres built with JIT (Debian's 15) compiled the write's
    // first statement each time, 150 ms. Writes touch a few rows: no JIT.
    const settings = { enable_seqscan: 'off', jit: 'off' };
    this.pool = new pg.Pool({ ...connectionConfig(options.databaseUrl, 'walsync-writes', settings), max: 8, pipeline: true } as pg.PoolConfig);
    this.pool.on('error', options.onConnectionError ?? (() => undefined));
  }

  async close(): Promise<void> {
    await this.pool.end();
  }

  /** The synced tables changed (a migration ran): batches are validated by the new ones from now on. */
  setTables(tables: SyncedTable[]): void {
    this.tables = new Map(tables.map((table) => [table.name, table]));
  }

  /**
   * Registers `clientId` for `userId`, or confirms it is theirs (false: another user's). A client id
   * names one replica of one user: another user's writes under it would be filtered out of that
   * replica's stream as its own echo. `schemaVersion` records what the client speaks (a session's hello).
   */
  async claimClientId(clientId: string, userId: string, schemaVersion: string | null = null): Promise<boolean> {
    if (schemaVersion === null && this.claims.get(clientId) === userId) return true;
    const result = await this.pool.query(
      `INSERT INTO sync_client (client_id, user_id, schema_version) VALUES ($1, $2, $3)
       ON CONFLICT (client_id) DO UPDATE SET schema_version = coalesce(EXCLUDED.schema_version, sync_client.schema_version), connected_at = now(), last_seen = now()
         WHERE sync_client.user_id = EXCLUDED.user_id
       RETURNING 1`,
      [clientId, userId, schemaVersion],
    );
    if (result.rowCount !== 1) return false;
    if (this.claims.size >= MAX_REMEMBERED_CLAIMS) this.claims.clear();
    this.claims.set(clientId, userId);
    return true;
  }

  /**
   * Applies one batch from `userId`; throws WriteRequestError when the request as a whole is refused.
   * Its changes are marked as the client's own (the client's stream skips them: the answer brings
   * them), unless `streamBack`: then the stream carries them to the client too (see SyncSession.write).
   */
  async applyBatch(userId: string, raw: unknown, options: { streamBack?: boolean } = {}): Promise<WriteBatchResult> {
    const stopTimer = this.options.metrics?.writeBatchSeconds.startTimer();
    try {
      const result = await this.checkedBatch(userId, raw, options.streamBack ?? false);
      for (const change of result.results) this.options.metrics?.writeChanges.inc({ status: change.status });
      return result;
    } finally {
      stopTimer?.();
    }
  }

  private async checkedBatch(userId: string, raw: unknown, streamBack: boolean): Promise<WriteBatchResult> {
    if (serialisedSize(raw) > WRITE_LIMITS.maxBatchBytes) {
      throw new WriteRequestError('too_large', `a write batch may take at most ${WRITE_LIMITS.maxBatchBytes} bytes as JSON`);
    }
    const parsed = WriteBatchSchema.safeParse(raw);
    if (!parsed.success) throw new WriteRequestError('invalid_batch', formatIssues(parsed.error, 'batch'));
    const { clientId } = parsed.data;
    if (!(await this.claimClientId(clientId, userId))) {
      throw new WriteRequestError('forbidden_client', `the client id ${clientId} belongs to another user's client; nothing was written`);
    }
    const context = { clientId, tables: this.tables, now: (this.options.now ?? Date.now)(), maxClockSkewMs: this.options.maxClockSkewMs };
    const answers: Array<PreparedChange | ChangeResult> = parsed.data.changes.map((change) => prepareChange(change, context));
    const retried = new Set<number>();
    let grouped = true;
    let conflicts = 0;
    for (;;) {
      const outcome = await this.attempt(userId, { clientId, streamBack }, answers, retried, grouped);
      if (outcome.done) return { results: outcome.results };
      if ('ungroup' in outcome) grouped = false;
      else if ('conflict' in outcome) {
        // A deadlock with another batch (Postgres rolled this one back): nothing was written, run it again.
        if (++conflicts > MAX_CONFLICT_RETRIES) throw outcome.conflict;
      }
      else if ('late' in outcome) await awaitVisible(this.pool, outcome.late);
      else if ('result' in outcome) answers[outcome.index] = outcome.result;
      else retried.add(outcome.index);
    }
  }

  private async attempt(
    userId: string,
    { clientId, streamBack }: { clientId: string; streamBack: boolean },
    answers: Array<PreparedChange | ChangeResult>,
    retried: Set<number>,
    grouped: boolean,
  ): Promise<
    | { done: true; results: ChangeResult[] }
    | { done: false; index: number; result: ChangeResult }
    | { done: false; index: number; retry: true }
    | { done: false; ungroup: true }
    | { done: false; conflict: Error }
    | { done: false; late: LateTransaction[] }
  > {
    const writable = answers.filter((answer): answer is PreparedChange => 'key' in answer);
    const client = await checkout(this.pool);
    let open = false;
    try {
      // Round trip 1: open the transaction and read everything the decisions need.
      const byTable = new Map<SyncedTable, PreparedChange[]>();
      for (const change of writable) byTable.set(change.table, [...(byTable.get(change.table) ?? []), change]);
      open = true;
      const [, , head, references, ...locked] = await Promise.all([
        client.query('BEGIN'),
        // Foreign keys are deferrable (clients apply batches in any order); here a violation must
        // belong to the change that caused it, so it is checked per statement.
        client.query('SET CONSTRAINTS ALL IMMEDIATE'),
        // The memberships are locked until COMMIT: a removal being made waits for this batch, or this
        // batch for it (and then sees it). Unlocked, a batch checked before a removal committed after
        // it, and its rows landed in a workspace the user had already left, in the stream's order.
        // The message names the transaction's client in the WAL: capture records it with each change.
        // Its snapshot also says whether Postgres shows every transaction of history yet (see `late` below).
        client.query<{ xid: string; receipts: Receipt[]; workspaces: string[] } & HistorySeen>({
          name: streamBack ? 'walsync_write_head_streamed_back' : 'walsync_write_head',
          text: `SELECT set_config('walsync.client_id', $1, true),
                  ${streamBack ? '' : `pg_logical_emit_message(true, '${CLIENT_MESSAGE_PREFIX}', $1),`}
                  (pg_current_xact_id()::text::bigint % 4294967296)::text AS xid,
                  (SELECT coalesce(json_agg(json_build_object('changeId', change_id, 'hash', request_hash, 'result', result)), '[]')
                     FROM write_receipt WHERE change_id = ANY($2::uuid[])) AS receipts,
                  (SELECT coalesce(array_agg(workspace_id), '{}') FROM (${membershipSql(3)} FOR SHARE) m) AS workspaces,
                  ${HISTORY_SEEN}`,
          values: [clientId, writable.map((change) => change.changeId), userId],
        }),
        readReferences(client, writable, this.tables),
        ...[...byTable].map(([table, changes]) => lockRows(client, table, changes)),
      ]);
      // A row the client read from the stream may come from a commit Postgres does not show yet (capture
      // stored it while the commit waited for a synchronous standby): read now, an update of it is
      // "not found" and a comment on it refused. The batch runs again once Postgres shows it.
      const late = lateTransactions(head.rows[0]!);
      if (late.length > 0) {
        await client.query('ROLLBACK');
        open = false;
        return { done: false, late };
      }
      const { xid, workspaces } = head.rows[0]!;
      const receipts = new Map(head.rows[0]!.receipts.map((receipt) => [receipt.changeId, receipt]));
      const known = new Map<string, KnownRow>();
      [...byTable.keys()].forEach((table, position) => {
        for (const row of locked[position]!.rows.map((each) => each.row)) {
          known.set(keyOf(table, table.primaryKey.map((name) => row[name])), { scope: row[table.scope], hlc: row.hlc, row });
        }
      });
      const before = new Map(known);
      // A row moving to another workspace keeps its references: they must hold there too (a rare extra read).
      const moves = writable.filter((change) => movedRow(change, known.get(keyOf(change.table, change.key))));
      if (moves.length > 0) {
        const kept = await readReferences(client, moves, this.tables, (change) => movedRow(change, known.get(keyOf(change.table, change.key))));
        for (const [key, scope] of kept.scopes) references.scopes.set(key, scope);
        for (const member of kept.memberships) references.memberships.add(member);
      }

      // Decide every change in order, as if each earlier one had applied.
      const decided = answers.map((answer) =>
        'key' in answer ? decide(answer, { clientId, xid, memberOf: new Set(workspaces), known, receipts, tables: this.tables, references }) : answer,
      );

      // Round trip 2: every statement, then COMMIT and the position the changes commit by.
      const units = plan(decided, grouped, clientId, xid);
      const executed = units.map((unit) =>
        client.query<{ row: Row }>({ name: preparedName(unit.sql), text: unit.sql, values: unit.params }).then(
          (result) => ({ ok: true as const, rows: unit.rowsFor(result.rows.map((each) => each.row)) }),
          (error: unknown) => ({ ok: false as const, error }),
        ),
      );
      const committed = client.query('COMMIT').then(
        () => true,
        () => false,
      );
      const lsn = client.query<{ lsn: string }>('SELECT pg_current_wal_insert_lsn()::text AS lsn');
      const outcomes = await Promise.all(executed);
      await committed;
      open = false;
      const position = formatPosition(parsePosition((await lsn).rows[0]!.lsn));

      const failed = outcomes.findIndex((outcome) => !outcome.ok);
      if (failed >= 0) {
        // COMMIT of a failed transaction rolls it back. A multi-row statement cannot say which row
        // failed: run again one statement per change. Otherwise answer that change alone and run the rest again.
        const error = (outcomes[failed] as { error: unknown }).error as Error & { code?: string };
        if (error.code === PG_ERROR.deadlock || error.code === PG_ERROR.serializationFailure) return { done: false, conflict: error };
        if (units[failed]!.indexes.length > 1) return { done: false, ungroup: true };
        const [index] = units[failed]!.indexes as [number];
        const change = answers[index] as PreparedChange;
        const rowKey = keyOf(change.table, change.key);
        // Another batch inserted the same key meanwhile: the row exists now, so run once more and let LWW decide.
        if (error.code === PG_ERROR.uniqueViolation && !before.has(rowKey) && !retried.has(index)) return { done: false, index, retry: true };
        return { done: false, index, result: refusal(change.changeId, error, before.get(rowKey)?.row ?? null) };
      }
      const rows = new Map<number, Row | null>();
      units.forEach((unit, position) => {
        const returned = (outcomes[position] as { rows: Array<Row | null> }).rows;
        unit.indexes.forEach((index, offset) => rows.set(index, returned[offset] ?? null));
      });
      const results = decided.map((decision, index) => {
        const result = 'sql' in decision ? decision.answer(rows.get(index) ?? null) : decision;
        return result.status === 'applied' ? { ...result, lsn: position } : result;
      });
      return { done: true, results };
    } catch (error) {
      if (open) await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    } finally {
      client.release();
    }
  }
}

/**
 * A batch's size as JSON. A value too deep to serialise (its changes are refused one by one, see
 * prepareChange) has already passed the transport's byte limit (body limit, socket payload limit).
 */
function serialisedSize(raw: unknown): number {
  try {
    return JSON.stringify(raw ?? null).length;
  } catch (error) {
    if (error instanceof RangeError) return 0;
    throw error;
  }
}
