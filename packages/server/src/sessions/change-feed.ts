import { EventEmitter } from 'node:events';
import { type Row, SCHEMA_CHANNEL, type StreamChange, formatPosition, retryDelay } from '@walsync/db/server';
import pg from 'pg';
import type { Logger } from 'pino';
import { CHANGES_CHANNEL, type Operation } from '../history/change-history';
import type { Scope } from '../auth/scope';
import { checkout, connectionConfig } from '../connection';

/** A pool or one of its connections. */
type Queryable = Pick<pg.Pool, 'query'>;

/** One row of change_history, as sessions use it. */
export interface FeedEntry {
  commitLsn: bigint;
  table: string;
  op: Operation;
  data: Row | null;
  old: Row | null;
  clientId: string | null;
  scopeId: string | null;
  /** The workspace an update moved the row out of, if it did. */
  oldScopeId: string | null;
}

export interface FeedOptions {
  url: string;
  log: Logger;
  /** The replication slot whose confirmed position says how far change_history is complete. */
  slotName: string;
  /** How many recent entries stay in memory for sessions that are caught up. */
  windowSize?: number;
  /** A poll when no NOTIFY arrived (a lost notification, a restarted listener). */
  pollIntervalMs?: number;
}

const READ_LIMIT = 5_000;

function toEntry(row: Record<string, any>): FeedEntry {
  return {
    commitLsn: BigInt(row.commit_lsn),
    table: row.table_name,
    op: row.operation,
    data: row.data,
    old: row.old_data,
    clientId: row.client_id,
    scopeId: row.scope_id,
    oldScopeId: row.old_scope_id ?? null,
  };
}

/**
 * The change stream of one server process: it tails change_history (NOTIFY is the wake-up hint,
 * the table the truth) and keeps the most recent entries in memory, so sessions that are caught up
 * read from memory and sessions that lag read from the database. Memory stays bounded however slow
 * a client is. Rows arrive in whole transactions, in commit order.
 *
 * @example
 *   const feed = new ChangeFeed({ url, log, slotName: 'walsync' });
 *   await feed.start();
 *   feed.on('advanced', (_tail, entries) => router.route(entries));
 */
export class ChangeFeed extends EventEmitter<{ advanced: [bigint, readonly FeedEntry[]]; schema: [string] }> {
  /** Commit LSN of the newest whole transaction read. */
  tail = 0n;
  /**
   * How far change_history is known complete: every transaction that ends at or before it has been
   * read (the slot's confirmed position, which capture moves only after storing; at least `tail`).
   * Past the last commit when other WAL followed it, e.g. a write's `lsn` read after its COMMIT.
   */
  captured = 0n;
  /** Entries with a commit LSN above this are all in `window`. */
  private windowStart = 0n;
  private window: FeedEntry[] = [];
  private listener: pg.Client | undefined;
  private readonly reader: pg.Pool;
  private polling: Promise<void> | undefined;
  private pollAgain = false;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  /** Failed LISTENs in a row (see retryDelay). */
  private relistens = 0;
  /**
   * Whether any session of this process may want new entries. While none does, a poll moves the
   * tail without reading the rows (and empties the window): a server without clients does not parse
   * every captured change back; a session that comes later reads what it lacks from change_history.
   */
  watched: () => boolean = () => true;

  constructor(private readonly options: FeedOptions) {
    super();
    this.setMaxListeners(0);
    this.reader = new pg.Pool({ ...connectionConfig(options.url, 'walsync-feed'), max: 4, pipeline: true } as pg.PoolConfig);
    this.reader.on('error', (error) => options.log.warn({ err: error }, 'change feed connection failed'));
  }

  async start(): Promise<void> {
    const result = await this.reader.query<{ tail: string | null }>(`SELECT max(commit_lsn)::text AS tail FROM change_history`);
    this.tail = BigInt(result.rows[0]!.tail ?? 0);
    this.captured = this.tail;
    this.windowStart = this.tail;
    await this.listen();
    this.timer = setInterval(() => this.poll(), this.options.pollIntervalMs ?? 500);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.polling;
    await this.listener?.end().catch(() => undefined);
    await this.reader.end();
  }

  get tailPosition(): string {
    return formatPosition(this.known);
  }

  /** The furthest position a client may hold: the last commit read, or what capture confirmed past it. */
  get known(): bigint {
    return this.captured > this.tail ? this.captured : this.tail;
  }

  /** LISTENs for the replicator's wake-ups; a lost listener is replaced (polling covers the gap). */
  private async listen(): Promise<void> {
    const listener = new pg.Client(connectionConfig(this.options.url, 'walsync-feed-listener'));
    let lost = false;
    const lose = (error: Error) => {
      if (lost) return;
      lost = true;
      if (this.listener === listener) this.listener = undefined;
      void listener.end().catch(() => undefined);
      if (this.stopped) return;
      this.options.log.warn({ err: error }, 'change feed listener failed; relying on polling until it is back');
      setTimeout(() => void this.listen().then(() => (this.relistens = 0), () => undefined), retryDelay(this.relistens++, { baseMs: 1_000, maxMs: 10_000 }));
    };
    // A migration run announces the new schema at its commit, before any change written after it.
    listener.on('notification', (notification) => (notification.channel === SCHEMA_CHANNEL ? this.emit('schema', notification.payload ?? '') : this.poll()));
    listener.on('error', lose);
    try {
      await listener.connect();
      await listener.query(`LISTEN ${CHANGES_CHANNEL}; LISTEN ${SCHEMA_CHANNEL}`);
    } catch (error) {
      lose(error as Error);
      throw error;
    }
    this.listener = listener;
  }

  /** Reads what is new; concurrent calls coalesce into one more read. */
  poll(): void {
    if (this.stopped) return;
    if (this.polling) {
      this.pollAgain = true;
      return;
    }
    this.polling = (async () => {
      try {
        do {
          this.pollAgain = false;
          const { confirmed, entries, upTo, skipped } = await this.readNew();
          if (skipped && upTo > this.tail) {
            this.window = [];
            this.windowStart = upTo;
          }
          if (upTo > this.tail) {
            // One by one: a transaction of more rows than a call takes as arguments stalled the feed when spread.
            for (const entry of entries) this.window.push(entry);
            this.tail = upTo;
            this.trimWindow();
            this.emit('advanced', this.tail, entries);
            if (entries.length >= READ_LIMIT) this.pollAgain = true;
          }
          const complete = [this.tail, confirmed].reduce((a, b) => (b > a ? b : a));
          if (entries.length < READ_LIMIT && complete > this.captured) {
            this.captured = complete;
            if (complete > this.tail) this.emit('advanced', this.tail, []);
          }
        } while (this.pollAgain && !this.stopped);
      } catch (error) {
        this.options.log.warn({ err: error }, 'reading change_history failed; retrying');
      } finally {
        this.polling = undefined;
      }
    })();
  }

  /**
   * The slot's confirmed position, then what change_history holds after the tail (or, while no
   * session watches, only how far it reaches). One round trip: both statements go down one pipelined
   * connection, which runs them in order, so the slot is read before the rows' snapshot is taken —
   * whatever ends at or before it was committed to change_history before the slot moved.
   */
  private async readNew(): Promise<{ confirmed: bigint; entries: FeedEntry[]; upTo: bigint; skipped: boolean }> {
    const client = await checkout(this.reader);
    try {
      const watched = this.watched();
      const [confirmed, read] = await Promise.all([
        this.confirmedPosition(client),
        watched ? this.query(this.tail, undefined, READ_LIMIT, client) : this.lastCommitAfter(this.tail, client),
      ]);
      if (typeof read !== 'bigint') return { confirmed, ...read, skipped: false };
      // Checked again in the same turn as the tail moves: a session that came meanwhile gets the rows.
      if (!this.watched()) return { confirmed, entries: [], upTo: read, skipped: true };
      return { confirmed, ...(await this.query(this.tail, undefined, READ_LIMIT, client)), skipped: false };
    } finally {
      client.release();
    }
  }

  /** Reads what is new now and resolves when done (a resume that names a position this process has not seen yet). */
  async refresh(): Promise<void> {
    this.poll();
    await this.polling;
    if (this.pollAgain) await this.refresh();
  }

  /** The newest commit in change_history after `after` (`after` when there is none). */
  private async lastCommitAfter(after: bigint, client: Queryable): Promise<bigint> {
    const result = await client.query<{ last: string | null }>(`SELECT max(commit_lsn)::text AS last FROM change_history WHERE commit_lsn > $1`, [after.toString()]);
    return BigInt(result.rows[0]!.last ?? after);
  }

  private async confirmedPosition(client: Queryable): Promise<bigint> {
    const result = await client.query<{ confirmed: string | null }>(
      `SELECT (confirmed_flush_lsn - '0/0'::pg_lsn)::text AS confirmed FROM pg_replication_slots WHERE slot_name = $1`,
      [this.options.slotName],
    );
    return BigInt(result.rows[0]?.confirmed ?? 0);
  }

  private trimWindow(): void {
    const size = this.options.windowSize ?? 20_000;
    if (this.window.length <= size) return;
    // Drop whole transactions only.
    let cut = this.window.length - size;
    const boundary = this.window[cut - 1]!.commitLsn;
    while (cut < this.window.length && this.window[cut]!.commitLsn === boundary) cut += 1;
    this.windowStart = boundary;
    this.window = this.window.slice(cut);
  }

  /**
   * Whole transactions after `after` (up to about `limit` entries) that concern `scope`, and the
   * position they reach: the commit LSN of the last transaction considered, which may be past the
   * last entry returned (transactions outside the scope still move a reader on).
   */
  async read(after: bigint, scope: Scope, limit = 5_000): Promise<{ entries: FeedEntry[]; upTo: bigint }> {
    if (after >= this.tail) return { entries: [], upTo: after };
    if (after >= this.windowStart) {
      const start = this.firstAfter(after);
      const entries: FeedEntry[] = [];
      let upTo = after;
      for (let index = start; index >= 0 && index < this.window.length; index++) {
        const entry = this.window[index]!;
        if (entry.commitLsn !== upTo && entries.length >= limit) break;
        upTo = entry.commitLsn;
        if (scope.concerns(entry)) entries.push(entry);
      }
      return { entries, upTo: start < 0 ? this.tail : upTo };
    }
    return this.query(after, scope, limit);
  }

  /** Index of the first window entry with a commit LSN above `after` (binary search; -1 if none). */
  private firstAfter(after: bigint): number {
    let low = 0;
    let high = this.window.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (this.window[middle]!.commitLsn > after) high = middle;
      else low = middle + 1;
    }
    return low < this.window.length ? low : -1;
  }

  /** The database path: rows after `after` up to the tail known now, in whole transactions. */
  private async query(after: bigint, scope: Scope | undefined, limit: number, client: Queryable = this.reader): Promise<{ entries: FeedEntry[]; upTo: bigint }> {
    const ceiling = scope ? this.tail : BigInt('9223372036854775807');
    const scopeParams = scope?.params() ?? [];
    const result = await client.query(
      `SELECT commit_lsn, table_name, operation, data, old_data, client_id, scope_id, old_scope_id FROM change_history
        WHERE commit_lsn > $1 AND commit_lsn <= $2 ${scope ? `AND ${scope.sqlCondition(4)}` : ''} ORDER BY commit_lsn, op_index LIMIT $3`,
      [after.toString(), ceiling.toString(), limit, ...scopeParams],
    );
    const entries = result.rows.map(toEntry);
    if (entries.length < limit) return { entries, upTo: scope ? ceiling : (entries.at(-1)?.commitLsn ?? after) };
    // The limit may cut the last transaction; finish it with a read of its own.
    const last = entries.at(-1)!.commitLsn;
    const kept = entries.filter((entry) => entry.commitLsn !== last);
    const rest = await client.query(
      `SELECT commit_lsn, table_name, operation, data, old_data, client_id, scope_id, old_scope_id FROM change_history
        WHERE commit_lsn = $1 ${scope ? `AND ${scope.sqlCondition(2)}` : ''} ORDER BY op_index`,
      [last.toString(), ...scopeParams],
    );
    return { entries: [...kept, ...rest.rows.map(toEntry)], upTo: last };
  }
}

/**
 * An entry as a client receives it: the whole row after an insert or update, the old row of a delete;
 * `asRemoval`: a row that moved out of the client's scope, sent as a delete of its old row.
 */
export function toStreamChange(entry: FeedEntry, asRemoval = false): StreamChange {
  if (entry.op === 'delete') return { table: entry.table, op: 'delete', old: entry.old ?? undefined };
  // A row that left what the client holds: the old row (what the client could see), with the version
  // it left at, so a replica that holds it newer already (an answer to a later write that kept it) keeps it.
  if (asRemoval) return { table: entry.table, op: 'delete', old: entry.old && entry.data && 'version' in entry.data ? { ...entry.old, version: entry.data.version } : entry.old ?? undefined };
  if (entry.op === 'truncate') return { table: entry.table, op: 'truncate' };
  return { table: entry.table, op: entry.op, data: entry.data ?? undefined };
}
