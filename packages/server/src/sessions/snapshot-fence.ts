import type pg from 'pg';
import { FENCE_MESSAGE_PREFIX } from '../history/server-schema';
import { type HistorySeen, type LateTransaction, lateTransactions, visibility } from '../history/visibility';
import type { ChangeFeed } from './change-feed';

/**
 * Where a snapshot stands in the stream. Read in the snapshot's first statement: the transactions it
 * sees (its MVCC snapshot) and the WAL insert position just after. Every transaction the snapshot sees
 * committed before `insertLsn`; one committing after it is not seen. A transaction ends before
 * `insertLsn` unseen when it committed while the snapshot was being taken, or when Postgres still
 * showed it running after its commit (a commit waiting for a synchronous standby): capture may have
 * stored such a one before the snapshot began, and recorded it (`late`). `visible` tells, and
 * `meetingPoint` places the snapshot in the stream.
 */
export interface SnapshotFence {
  /** The newest change_history commit the snapshot's transaction sees. */
  head: bigint;
  /** The WAL insert position read in the snapshot (a position of the stream: commit LSNs are ends of commit records). */
  insertLsn: bigint;
  /** Whether the snapshot sees the transaction `xid` (32-bit, as pgoutput and change_history carry it). */
  visible(xid: number): boolean;
  /** Transactions in the history the snapshot sees that it does not see itself (capture stored them while they showed running). */
  late: LateTransaction[];
}

/**
 * The fence of a snapshot from its first statement: its MVCC snapshot and what capture recorded as
 * running (`HISTORY_SEEN`), its head and insert position.
 */
export function snapshotFence(seen: HistorySeen, head: bigint, insertLsn: bigint): SnapshotFence {
  return { head, insertLsn, visible: visibility(seen.walsync_snapshot), late: lateTransactions(seen) };
}

/** The WAL insert position now, as SQL: a position of the stream, read as text (`BigInt` takes it). */
export const WAL_INSERT_POSITION = `(pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::text`;

/** The WAL insert position now (as a snapshot's fence reads it, in the snapshot's own statement). */
export async function walInsertPosition(pool: Pick<pg.Pool, 'query'>): Promise<bigint> {
  const result = await pool.query<{ insert: string }>(`SELECT ${WAL_INSERT_POSITION} AS insert`);
  return BigInt(result.rows[0]!.insert);
}

/**
 * Waits until change_history holds every transaction that ended before `lsn` and this process's
 * feed has read them: a fence message is written to WAL, which capture confirms as soon as what
 * precedes it is stored (the slot's confirmed position is what the feed calls `captured`).
 */
export async function awaitCapture(pool: Pick<pg.Pool, 'query'>, feed: ChangeFeed, lsn: bigint, timeoutMs = 60_000): Promise<void> {
  if (feed.captured >= lsn) return;
  await pool.query(`SELECT pg_logical_emit_message(false, $1, '')`, [FENCE_MESSAGE_PREFIX]);
  const deadline = Date.now() + timeoutMs;
  for (let pause = 2; ; pause = Math.min(pause * 2, 50)) {
    await feed.refresh();
    if (feed.captured >= lsn) return;
    if (Date.now() > deadline) throw new Error(`capture did not reach the snapshot's position within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, pause));
  }
}

/**
 * Where the snapshot meets a stream that stands at `after`: the position up to which the snapshot holds
 * everything and after which it holds nothing (the stream sends what follows it). That is the fence's
 * insert position when the snapshot sees every transaction of history that ended in (`after`,
 * fence.insertLsn]. A transaction that committed while the snapshot was taken ends there unseen: when
 * every one the snapshot sees ended before the first unseen one, the point is just before that one,
 * and the stream sends it and all after. Under a steady stream of commits on a loaded machine, ten
 * snapshots in a row had such a transaction, and the client could not hydrate.
 *
 * A late transaction (history the snapshot sees, rows it does not: `fence.late`) at or before `after`
 * would never reach the client: where the client holds nothing yet (`movable`, a first snapshot) the
 * point moves before it, and the stream sends it; otherwise the snapshot is read again once Postgres
 * shows it (`awaitVisible`). Undefined when the snapshot cannot meet the stream: a transaction seen
 * ended after one unseen, or a late one the point cannot move before.
 */
export async function meetingPoint(pool: Pick<pg.Pool, 'query'>, fence: SnapshotFence, after: bigint, movable = false): Promise<bigint | undefined> {
  let from = after;
  for (const late of fence.late) {
    if (late.commit > after) continue;
    if (!movable) return undefined;
    if (late.commit - 1n < from) from = late.commit - 1n;
  }
  if (from >= fence.insertLsn) return fence.insertLsn;
  const result = await pool.query<{ xid: string; commit: string }>(
    `SELECT DISTINCT transaction_id AS xid, commit_lsn::text AS commit FROM change_history WHERE commit_lsn > $1 AND commit_lsn <= $2`,
    [from.toString(), fence.insertLsn.toString()],
  );
  let lastSeen = from;
  let firstUnseen: bigint | undefined;
  for (const row of result.rows) {
    const commit = BigInt(row.commit);
    if (fence.visible(Number(row.xid))) lastSeen = commit > lastSeen ? commit : lastSeen;
    else firstUnseen = firstUnseen === undefined || commit < firstUnseen ? commit : firstUnseen;
  }
  if (firstUnseen === undefined) return fence.insertLsn;
  return lastSeen < firstUnseen ? firstUnseen - 1n : undefined;
}
