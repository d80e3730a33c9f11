import type pg from 'pg';
import { RUNNING_TABLE } from './change-history';

type Queryable = Pick<pg.ClientBase, 'query'>;

/**
 * What a read must see of the transactions in change_history. Capture can store a transaction that
 * Postgres still shows running (its commit is in the WAL, but a synchronous standby's answer, or a
 * paused backend, keeps it from showing) and records it in RUNNING_TABLE. A read that follows the
 * stream (a scope read after a membership change, a subscription's root row, a snapshot) must see
 * what the stream has passed: it waits for those transactions to show.
 */

/** `a` comes before `b` in the 32-bit transaction id circle (Postgres' TransactionIdPrecedes). */
const precedes = (a: number, b: number) => ((a - b) | 0) < 0;

/** Whether a snapshot, as `pg_current_snapshot()` text (`xmin:xmax:xip,…`, 64-bit ids), sees a transaction (32-bit id, as pgoutput and change_history carry it). */
export function visibility(snapshot: string): (xid: number) => boolean {
  const match = /^(\d+):(\d+):([\d,]*)$/.exec(snapshot);
  if (!match) throw new Error(`unexpected pg_current_snapshot() text: ${snapshot}`);
  const xid32 = (text: string) => Number(BigInt(text) & 0xffffffffn);
  const [xmin, xmax] = [xid32(match[1]!), xid32(match[2]!)];
  const inProgress = new Set(match[3] ? match[3].split(',').map(xid32) : []);
  return (xid) => precedes(xid, xmin) || (precedes(xid, xmax) && !inProgress.has(xid));
}

/** Columns of a statement: its snapshot, and what capture recorded as running when it stored it (`[xid, commit]` pairs). */
export const HISTORY_SEEN = `pg_current_snapshot()::text AS walsync_snapshot,
  (SELECT coalesce(json_agg(json_build_array(xid, commit_lsn::text)), '[]') FROM ${RUNNING_TABLE}) AS walsync_running`;

export interface HistorySeen {
  walsync_snapshot: string;
  walsync_running: Array<[number, string]>;
}

export interface LateTransaction {
  xid: number;
  commit: bigint;
}

/** The transactions in history that the statement (read with HISTORY_SEEN) did not see. */
export function lateTransactions(row: HistorySeen): LateTransaction[] {
  const visible = visibility(row.walsync_snapshot);
  return row.walsync_running.filter(([xid]) => !visible(xid)).map(([xid, commit]) => ({ xid, commit: BigInt(commit) }));
}

/**
 * Waits until new snapshots see the `late` transactions (committed, still shown running). A commit's
 * own end takes microseconds; a synchronous standby's answer may take long, and one that never comes
 * ends the wait after `timeoutMs` with an error that says so.
 */
export async function awaitVisible(db: Queryable, late: LateTransaction[], timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let pause = 1; ; pause = Math.min(pause * 2, 50)) {
    const now = await db.query<{ snapshot: string }>(`SELECT pg_current_snapshot()::text AS snapshot`);
    const visible = visibility(now.rows[0]!.snapshot);
    const running = late.map((transaction) => transaction.xid).filter((xid) => !visible(xid));
    if (running.length === 0) return;
    if (Date.now() > deadline) {
      throw new Error(
        `transactions ${running.join(', ')} committed but Postgres still shows them running after ${timeoutMs} ms (a synchronous standby that does not answer?); what follows the stream cannot be read before they end`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, pause));
  }
}

/**
 * Runs `read`, one statement that also returns HISTORY_SEEN, so that what it read saw every
 * transaction change_history holds: when it missed some, waits until they show and runs it once more.
 * Those captured after its first run come after anything the stream had passed, so once suffices.
 */
export async function readSeeingHistory<T extends HistorySeen>(db: Queryable, read: () => Promise<T>): Promise<T> {
  const first = await read();
  const late = lateTransactions(first);
  if (late.length === 0) return first;
  await awaitVisible(db, late);
  return read();
}

/** Waits until new snapshots see every transaction change_history holds now. */
export async function awaitHistoryVisible(db: Queryable): Promise<void> {
  await readSeeingHistory(db, async () => (await db.query<HistorySeen>(`SELECT ${HISTORY_SEEN}`)).rows[0]!);
}
