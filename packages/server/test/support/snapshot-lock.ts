import { type TestDatabase, waitFor } from '@walsync/test-support';
import pg from 'pg';

/**
 * Commits `during` while a snapshot is being taken, for certain: the snapshot's first statement takes
 * its MVCC snapshot, then waits for a lock on the history horizon it reads, which this holds until
 * `during` committed. `start` makes the server begin the snapshot (a hello, a subscribe). So what
 * `during` commits ends before the snapshot's WAL position unseen by it.
 */
export async function commitWhileSnapshotIsTaken<T>(db: TestDatabase, start: () => unknown, during: () => Promise<T>): Promise<T> {
  const locker = new pg.Client({ connectionString: db.url });
  await locker.connect();
  try {
    await locker.query('BEGIN');
    await locker.query('LOCK TABLE walsync_history_horizon IN ACCESS EXCLUSIVE MODE');
    await start();
    const waiting = () => db.query(`SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%walsync_history_horizon%' AND pid <> pg_backend_pid()`);
    await waitFor('the snapshot to wait for the lock, its MVCC snapshot taken', async () => (await waiting()).length > 0);
    const result = await during();
    await locker.query('COMMIT');
    return result;
  } finally {
    await locker.end();
  }
}
