import type pg from 'pg';
import { RUNNING_TABLE } from '../history/change-history';
import { FENCE_MESSAGE_PREFIX } from '../history/server-schema';
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

export interface LateTransaction {
  xid: number;
  commit: bigint;
}

/** `a` comes before `b` in the 32-bit transaction id circle (Postgres' TransactionIdPrecedes). */
const precedes = (a: number, b: number) => ((a - b) | 0) < 0;

/** Whether a snapshot, as `pg_current_snapshot()` text (`xmin:xmax:xip,…`, 64-bit ids), sees a transaction (32-bit id). */
export function visibility(snapshot: string): (xid: number) => boolean {
  const match = /^(\d+):(\d+):([\d,]*)$/.exec(snapshot);
  if (!match) throw new Error(`unexpected pg_current_snapshot() text: ${snapshot}`);
  const xid32 = (text: string) => Number(BigInt(text) & 0xffffffffn);
  const [xmin, xmax] = [xid32(match[1]!), xid32(match[2]!)];
  const inProgress = new Set(match[3] ? match[3].split(',').map(xid32) : []);
  return (xid) => precedes(xid, xmin) || (precedes(xid, xmax) && !inProgress.has(xid));
}

/**
 * The fence of a snapshot (`pg_current_snapshot()` text), its head and insert position, and the
 * transactions capture recorded as running when it stored them (`[xid, commit]`, read with the snapshot).
 */
export function snapshotFence(snapshot: string, head: bigint, insertLsn: bigint, recorded: Array<[number, string]> = []): SnapshotFence {
  const visible = visibility(snapshot);
  const late = recorded.filter(([xid]) => !visible(xid)).map(([xid, commit]) => ({ xid, commit: BigInt(commit) }));
  return { head, insertLsn, visible, late };
}

/** The fence statement's column of what capture recorded as running (see RUNNING_TABLE), as `[xid, commit]` pairs. */
export const RECORDED_RUNNING = `(SELECT coalesce(json_agg(json_build_array(xid, commit_lsn::text)), '[]') FROM ${RUNNING_TABLE})`;

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

/**
 * Waits until new snapshots see the transactions `xids` (32-bit ids: committed, still shown running).
 * A commit's own end takes microseconds; a synchronous standby's answer may take long, and one that
 * never comes ends the wait after `timeoutMs` with an error that says so.
 */
export async function awaitVisible(client: Pick<pg.ClientBase, 'query'>, xids: number[], timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let pause = 1; ; pause = Math.min(pause * 2, 50)) {
    const now = await client.query<{ snapshot: string }>(`SELECT pg_current_snapshot()::text AS snapshot`);
    const visible = visibility(now.rows[0]!.snapshot);
    const running = xids.filter((xid) => !visible(xid));
    if (running.length === 0) return;
    if (Date.now() > deadline) {
      throw new Error(
        `transactions ${running.join(', ')} committed but Postgres still shows them running after ${timeoutMs} ms (a synchronous standby that does not answer?); a snapshot cannot be placed in the stream before they end`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, pause));
  }
}
