import { CloseCodes, type ServerMessage, type SubscriptionRef, type SyncedTable, formatPosition, parsePosition, quoteIdent } from '@walsync/db/server';
import type pg from 'pg';
import type { WebSocket } from 'ws';
import { checkout } from '../connection';
import { Stalled, drained } from './flow-control';
import type { SnapshotGate } from './snapshot-gate';
import { HISTORY_SEEN, type HistorySeen, awaitVisible } from '../history/visibility';
import { type SnapshotFence, WAL_INSERT_POSITION, snapshotFence } from './snapshot-fence';

export interface SnapshotPage {
  table: string;
  /** The rows as a JSON array, exactly as Postgres serialised them (spliced into the message as is). */
  rowsJson: string;
  count: number;
  sent: number;
  total: number;
}

export interface SnapshotSink {
  start(position: string, total: Record<string, number>): Promise<void>;
  page(page: SnapshotPage): Promise<void>;
}

/**
 * Which rows a snapshot reads: the rows of `workspaces`, and of each table either all of them, or
 * those whose columns hold one of the given values (a client's subscriptions), or none.
 */
export interface SnapshotSelection {
  workspaces: string[];
  /** Per table: 'all', or the values each column must match (any of them), absent: none. */
  tables: Map<string, 'all' | Map<string, string[]>>;
}

/** The condition that selects a table's rows, with its parameters (numbered from $1). */
function selectionWhere(table: SyncedTable, selection: SnapshotSelection): { where: string; params: unknown[] } | undefined {
  const rule = selection.tables.get(table.name);
  if (!rule) return undefined;
  const params: unknown[] = [selection.workspaces];
  let where = `${quoteIdent(table.scope)} = ANY($1::uuid[])`;
  if (rule !== 'all') {
    const any = [...rule].map(([column, values]) => {
      params.push(values);
      // Compared in the column's own type, so its index serves the read.
      const type = table.columns.find((each) => each.name === column)?.type === 'uuid' ? 'uuid' : 'text';
      return `${quoteIdent(column)} = ANY($${params.length}::${type}[])`;
    });
    where += ` AND (${any.join(' OR ') || 'false'})`;
  }
  return { where, params };
}

/** The tables `selection` reads, each with the condition that selects its rows (and its parameters). */
export function selectedTables(tables: SyncedTable[], selection: SnapshotSelection): Array<{ table: SyncedTable; where: string; params: unknown[] }> {
  return tables.flatMap((table) => {
    const where = selectionWhere(table, selection);
    return where ? [{ table, ...where }] : [];
  });
}

/** Every table, all of its rows in `workspaces`: a client that holds its whole scope. */
export function wholeScope(tables: SyncedTable[], workspaces: string[]): SnapshotSelection {
  return { workspaces, tables: new Map(tables.map((table) => [table.name, 'all' as const])) };
}

/** The first page of a table is small; later ones are sized by the rows seen so far. */
const FIRST_PAGE_ROWS = 100;
const MAX_PAGE_ROWS = 10_000;

/**
 * Decides, once the snapshot's transaction is open, what it reads and where it meets the stream (its
 * position: see `meetingPoint`), or undefined to read a new snapshot. The stream is brought to that
 * position meanwhile. `reader` reads in the snapshot's own transaction (what it sees, as it sees it).
 */
export type SnapshotMeeting = (fence: SnapshotFence, reader: Pick<pg.ClientBase, 'query'>) => Promise<{ selection: SnapshotSelection; position: bigint } | undefined>;

/** Snapshots read again at most this often when transactions keep committing as they are taken. */
const MAX_ATTEMPTS = 10;

/**
 * A consistent snapshot of some workspaces, tombstones included, in pages. It runs in one
 * REPEATABLE READ transaction; `meet` learns where it stands in the stream (its fence) before a row
 * is read, and the snapshot's position is where the two meet (`meetingPoint`): every transaction it
 * sees ended at or before it, every later one is after it. So the stream continues after the position
 * with exactly what the snapshot did not see — no gap, and no change it already holds sent again
 * (an old version of a row whose parent has since left would arrive alone).
 *
 * Each table is read by one cursor (a single scan, however large the workspace), as JSON text that
 * goes into the message without being parsed (row_to_json: twice as fast as to_jsonb, same values).
 * Pages hold about `pageBytes` (the row count follows the rows' size, up to `MAX_PAGE_ROWS`), so a
 * workspace of large rows costs no more memory per page than one of small rows. Returns the position (an LSN).
 */
export async function sendSnapshot(client: pg.ClientBase, tables: SyncedTable[], meet: SnapshotMeeting, sink: SnapshotSink, pageBytes = 2 << 20): Promise<string> {
  for (let attempt = 1; ; attempt++) {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    try {
      // Never older than the pruning horizon: with the history pruned empty, 0/0 would send the client straight back to re-snapshot.
      const head = await client.query<{ head: string | null; insert: string } & HistorySeen>(
        `SELECT greatest((SELECT max(commit_lsn) FROM change_history), (SELECT pruned_through FROM walsync_history_horizon))::text AS head,
                ${HISTORY_SEEN}, ${WAL_INSERT_POSITION} AS insert`,
      );
      const { head: headLsn, insert } = head.rows[0]!;
      const fence = snapshotFence(head.rows[0]!, BigInt(headLsn ?? 0), BigInt(insert));
      const met = await meet(fence, client);
      if (!met) {
        await client.query('ROLLBACK');
        if (attempt >= MAX_ATTEMPTS) throw new Error(`no snapshot met the stream in ${MAX_ATTEMPTS} attempts (transactions kept committing as each was taken)`);
        // The next snapshot sees the late transactions, once Postgres shows them.
        if (fence.late.length > 0) await awaitVisible(client, fence.late);
        continue;
      }
      const position = formatPosition(met.position);
      await readSnapshot(client, tables, met.selection, position, sink, pageBytes);
      await client.query('COMMIT');
      return position;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    }
  }
}

/** The counts, then the pages, of `selection`, inside the snapshot's transaction. */
async function readSnapshot(client: pg.ClientBase, tables: SyncedTable[], selection: SnapshotSelection, position: string, sink: SnapshotSink, pageBytes: number): Promise<void> {
  const total: Record<string, number> = {};
  const selected = selectedTables(tables, selection);
  for (const { table, where, params } of selected) {
    const counted = await client.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${quoteIdent(table.name)} WHERE ${where}`, params);
    total[table.name] = counted.rows[0]!.n;
  }
  await sink.start(position, total);
  for (const { table, where, params } of selected) {
    if (total[table.name] === 0) continue;
    await client.query(`DECLARE walsync_snapshot NO SCROLL CURSOR FOR SELECT row_to_json(t.*)::text AS row FROM ${quoteIdent(table.name)} t WHERE ${where}`, params);
    let sent = 0;
    let rows = FIRST_PAGE_ROWS;
    const fetchPage = () => client.query<{ row: string }>(`FETCH ${rows} FROM walsync_snapshot`);
    // The next page is read while the current one goes out.
    let next = fetchPage();
    for (;;) {
      const page = await next;
      if (page.rows.length === 0) break;
      const rowsJson = `[${page.rows.map((row) => row.row).join(',')}]`;
      rows = Math.max(1, Math.min(MAX_PAGE_ROWS, Math.floor((pageBytes * page.rows.length) / rowsJson.length)));
      next = fetchPage();
      sent += page.rows.length;
      await sink.page({ table: table.name, rowsJson, count: page.rows.length, sent, total: total[table.name]! });
    }
    await client.query('CLOSE walsync_snapshot');
  }
}

/** The session a snapshot goes to. */
export interface SnapshotTarget {
  userId: string;
  socket: WebSocket;
  closed(): boolean;
  send(message: ServerMessage | string): void;
  close(code: number, reason: string): void;
}

export interface SnapshotLimits {
  /** Snapshots one user may run at once (more wait their turn). */
  perUser: number;
  /** Snapshots the process runs at once; also the size of their own connection pool. */
  perProcess: number;
  /** A snapshot whose client reads nothing for this long is ended (the client resumes later). */
  stallMs: number;
}

export const DEFAULT_SNAPSHOT_LIMITS: SnapshotLimits = { perUser: 2, perProcess: 4, stallMs: 30_000 };

/**
 * Snapshots for every session of a process, on their own connections: admitted by `gate`, read
 * from `pool` (sized to the gate, so a snapshot never waits for, nor takes, a connection that
 * hello, acks, health or writes need), and ended when the client stops reading.
 */
export class Snapshots {
  constructor(
    private readonly pool: pg.Pool,
    readonly gate: SnapshotGate,
    private readonly stallMs: number,
  ) {}

  /**
   * Runs `read` on a snapshot connection once the gate admits it (one of the user's places, as a
   * snapshot would take): a one-off read such as `POST /rows`. Undefined when `abandoned()` came first.
   */
  async read<T>(userId: string, abandoned: () => boolean, read: (client: pg.ClientBase) => Promise<T>): Promise<{ value: T } | undefined> {
    const release = await this.gate.enter(userId, abandoned);
    if (!release) return undefined;
    try {
      const client = await checkout(this.pool);
      try {
        return { value: await read(client) };
      } finally {
        client.release();
      }
    } finally {
      release();
    }
  }

  /**
   * Sends a snapshot of what `meet` selects once it knows the snapshot's fence (`replace`: it replaces
   * everything the client holds; `subscriptions`: those whose rows it brings) and returns its position, or undefined when the client went away or
   * stalled (it is closed then).
   */
  async send(
    target: SnapshotTarget,
    tables: SyncedTable[],
    meet: SnapshotMeeting,
    options: { replace: boolean; subscriptions?: SubscriptionRef[]; announce?: string[] },
  ): Promise<bigint | undefined> {
    const { replace, subscriptions } = options;
    let workspaces: string[] = [];
    const release = await this.gate.enter(target.userId, target.closed);
    if (!release) return undefined;
    try {
      const client = await checkout(this.pool);
      try {
        const meeting: SnapshotMeeting = async (fence, reader) => {
          const met = await meet(fence, reader);
          // The workspaces the client holds once it ended (a subscription's snapshot adds none).
          if (met) workspaces = options.announce ?? met.selection.workspaces;
          return met;
        };
        const position = await sendSnapshot(client, tables, meeting, {
          start: async (at, total) => target.send({ type: 'snapshot_start', position: at, total, workspaces, replace, ...(subscriptions ? { subscriptions } : {}) }),
          page: async (page) => {
            if (!(await drained(target.socket, target.closed, this.stallMs))) throw new Error('the client went away during the snapshot');
            target.send(`{"type":"snapshot_batch","table":${JSON.stringify(page.table)},"sent":${page.sent},"total":${page.total},"rows":${page.rowsJson}}`);
          },
        });
        target.send({ type: 'snapshot_end', position });
        return parsePosition(position);
      } finally {
        client.release();
      }
    } catch (error) {
      if (error instanceof Stalled) target.close(CloseCodes.stalled, `the snapshot was not read for ${this.stallMs} ms; reconnect to resume`);
      if (target.closed()) return undefined;
      throw error;
    } finally {
      release();
    }
  }
}
