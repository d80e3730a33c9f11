import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { randomUUID } from 'node:crypto';
import { PG_ERROR } from '../connection';

/** NOTIFY channel the replicator signals after each batch commits: a wake-up hint, never the truth. */
export const CHANGES_CHANNEL = 'walsync_changes';

export type Operation = 'insert' | 'update' | 'delete' | 'truncate';

/** One captured change, as it is stored in change_history. */
export interface CapturedChange {
  lsn: string;
  commit_lsn: string;
  op_index: number;
  table_name: string;
  operation: Operation;
  data: Record<string, unknown> | null;
  old_data: Record<string, unknown> | null;
  transaction_id: string;
  schema_version: string;
  timestamp: string;
  client_id: string | null;
  scope_id: string | null;
  /** Set when an update moved the row to another scope: the workspace it left (its sessions get a removal). */
  old_scope_id: string | null;
}

/**
 * Transactions capture stored while Postgres still showed them running: their commit was in the WAL,
 * but the committing backend had not ended (a commit waiting for a synchronous standby, or a backend
 * the machine paused). A snapshot that sees their history may not see their rows; it reads this table
 * to place itself in the stream (see `meetingPoint`). Rows leave once new snapshots see them.
 */
export const RUNNING_TABLE = 'walsync_captured_running';

/**
 * CTEs for the statement that stores a batch: record which of the batch's transactions (`$xids`,
 * 32-bit ids as pgoutput gives them, and `$commits`, their commit positions) the statement's snapshot
 * shows running, and forget those recorded before that it sees now. A snapshot taken after the
 * batch commits sees every transaction this one saw; the others it finds here.
 */
function recordRunning(xids: number, commits: number): string {
  // In 32-bit ids, as Postgres' own TransactionIdPrecedes: a transaction is running for the snapshot
  // when it does not precede xmax or is in its xip list.
  const running = (xid: string) => `((${xid} - snap.xmax + 4294967296) % 4294967296 < 2147483648 OR ${xid} = ANY (snap.xip))`;
  return `snap AS (
             SELECT pg_snapshot_xmax(s)::text::bigint % 4294967296 AS xmax,
                    ARRAY(SELECT x::text::bigint % 4294967296 FROM pg_snapshot_xip(s) AS x) AS xip
             FROM pg_current_snapshot() AS s),
           seen AS (
             DELETE FROM ${RUNNING_TABLE} AS r USING snap WHERE NOT ${running('r.xid')}),
           running AS (
             INSERT INTO ${RUNNING_TABLE} (xid, commit_lsn)
             SELECT t.xid, t.commit_lsn FROM unnest($${xids}::bigint[], $${commits}::bigint[]) AS t (xid, commit_lsn), snap
             WHERE ${running('t.xid')}
             ON CONFLICT (xid) DO UPDATE SET commit_lsn = EXCLUDED.commit_lsn)`;
}

/** The batch's transactions: their ids and commit positions, once each (recordRunning's parameters). */
function transactionsOf(changes: CapturedChange[]): [string[], string[]] {
  const commits = new Map<string, string>();
  for (const change of changes) commits.set(change.transaction_id, change.commit_lsn);
  return [[...commits.keys()], [...commits.values()]];
}

const COLUMNS = ['lsn', 'commit_lsn', 'op_index', 'table_name', 'operation', 'data', 'old_data', 'transaction_id', 'schema_version', 'timestamp', 'client_id', 'scope_id', 'old_scope_id'] as const;
const COLUMN_LIST = COLUMNS.map((column) => `"${column}"`).join(', ');
const STAGE = 'change_history_stage';
/** Batches of at most this many changes are stored by one statement (see writeInOneStatement), larger ones by COPY. */
const ONE_STATEMENT_ROWS = 100;
/**
 * The COPY is sent in pieces of this many rows, each built while Postgres stores the one before
 * (one string for a whole batch kept Postgres waiting until the last row was built).
 */
const COPY_PIECE = 500;

const NEEDS_ESCAPE = /[\\\n\r\t]/;
const ESCAPES: Record<string, string> = { '\\': '\\\\', '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/** A value in COPY's text format. */
function copyValue(value: unknown): string {
  if (value === null || value === undefined) return '\\N';
  if (typeof value === 'object') {
    // JSON text has no raw newline, carriage return or tab (JSON.stringify escapes them): only its backslashes need doubling.
    const json = JSON.stringify(value);
    return json.includes('\\') ? json.replaceAll('\\', '\\\\') : json;
  }
  const text = String(value);
  return NEEDS_ESCAPE.test(text) ? text.replace(/[\\\n\r\t]/g, (character) => ESCAPES[character]!) : text;
}

/**
 * A UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then random bits. Ids that follow time append
 * to the primary key's B-tree instead of splitting random pages. Built on crypto.randomUUID(),
 * which draws from a pooled entropy buffer.
 */
export function timeOrderedUuid(now = Date.now()): string {
  const random = randomUUID();
  const time = now.toString(16).padStart(12, '0');
  return `${time.slice(0, 8)}-${time.slice(8, 12)}-7${random.slice(15)}`;
}

/** The changes as COPY text, a piece at a time, built as the COPY takes them. */
function* copyPieces(changes: CapturedChange[]): Generator<string> {
  for (let start = 0; start < changes.length; start += COPY_PIECE) {
    let text = '';
    for (const change of changes.slice(start, start + COPY_PIECE)) {
      // Time-ordered ids (UUIDv7) append to the primary key's B-tree instead of splitting random pages.
      text += `${timeOrderedUuid()}\t${COLUMNS.map((column) => copyValue(change[column])).join('\t')}\n`;
    }
    yield text;
  }
}

/**
 * Appends whole transactions to change_history in one database transaction (COPY), then signals
 * sessions. A position (commit LSN, op index) that is already stored — a replay after a crash — is
 * skipped, never stored twice.
 */
export async function appendToHistory(client: pg.ClientBase, changes: CapturedChange[], capturedUpTo: string): Promise<void> {
  if (changes.length === 0) return;
  try {
    if (changes.length <= ONE_STATEMENT_ROWS) await writeInOneStatement(client, changes, capturedUpTo);
    else await writeInOneTransaction(client, changes, capturedUpTo, 'change_history');
  } catch (error) {
    // A unique position already stored: this is a replay after a crash. Write through a stage
    // that skips what is already there.
    if ((error as { code?: string }).code !== PG_ERROR.uniqueViolation) throw error;
    await writeInOneTransaction(client, changes, capturedUpTo, STAGE);
  }
}

/**
 * A few changes (a live system's usual batch: one commit) go as one statement in its own transaction:
 * the rows and the wake-up in one round trip, where BEGIN, COPY, NOTIFY and COMMIT take five.
 */
async function writeInOneStatement(client: pg.ClientBase, changes: CapturedChange[], capturedUpTo: string): Promise<void> {
  const rows = changes.map((change) => {
    const row: Record<string, unknown> = { id: timeOrderedUuid() };
    for (const column of COLUMNS) row[column] = change[column];
    return row;
  });
  await client.query({
    name: 'walsync_append_history',
    text: `WITH stored AS (
             INSERT INTO change_history (id, ${COLUMN_LIST})
             SELECT id, ${COLUMN_LIST} FROM json_populate_recordset(NULL::change_history, $1::json)
             RETURNING 1),
           ${recordRunning(4, 5)}
           SELECT pg_notify($2, $3) FROM (SELECT count(*) FROM stored) AS done`,
    values: [JSON.stringify(rows), CHANGES_CHANNEL, capturedUpTo, ...transactionsOf(changes)],
  });
}

async function writeInOneTransaction(client: pg.ClientBase, changes: CapturedChange[], capturedUpTo: string, target: string): Promise<void> {
  await client.query('BEGIN');
  try {
    if (target === STAGE) {
      await client.query(`CREATE TEMP TABLE IF NOT EXISTS ${STAGE} (LIKE change_history INCLUDING DEFAULTS) ON COMMIT DELETE ROWS`);
    }
    const copy = client.query(copyFrom(`COPY ${target} (id, ${COLUMN_LIST}) FROM STDIN`));
    await pipeline(Readable.from(copyPieces(changes), { objectMode: false }), copy);
    if (target === STAGE) {
      await client.query(
        `INSERT INTO change_history SELECT * FROM ${STAGE} ORDER BY commit_lsn, op_index ON CONFLICT ON CONSTRAINT change_history_position DO NOTHING`,
      );
    }
    await client.query(`WITH ${recordRunning(3, 4)} SELECT pg_notify($1, $2)`, [CHANGES_CHANNEL, capturedUpTo, ...transactionsOf(changes)]);
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
}
