import { type TestDatabase, waitFor } from '@walsync/test-support';
import pg from 'pg';

/**
 * Sets (or with null, resets) a Postgres setting of the whole cluster and reloads it. Backends take
 * a reloaded setting before their next command: the server's idle ones get a moment to.
 */
export async function setSystem(db: TestDatabase, name: string, value: string | null): Promise<void> {
  await db.query(value === null ? `ALTER SYSTEM RESET ${name}` : `ALTER SYSTEM SET ${name} = '${value}'`);
  await db.query(`SELECT pg_reload_conf()`);
  const expected = value ?? (await db.query(`SELECT boot_val FROM pg_settings WHERE name = $1`, [name]))[0]!.boot_val;
  const unquoted = (text: string) => text.replaceAll('"', '');
  await waitFor(`${name} = ${expected} to be loaded`, async () => unquoted((await db.query(`SELECT current_setting($1) AS value`, [name]))[0]!.value) === unquoted(expected));
  await new Promise((resolve) => setTimeout(resolve, 300));
}

/**
 * Runs `sql` in a transaction that commits but stays running in Postgres' eyes, as a commit waiting
 * for a synchronous standby does: its commit is in the WAL (capture reads it and stores it) while
 * every snapshot still sees it in progress, until `release()` cancels the wait ("already committed
 * locally"). The cluster waits for a standby that never comes; the server's own sessions are set to
 * `synchronous_commit = local` first, so only this transaction waits. `restore()` undoes both.
 */
export async function commitAwaitingStandby(db: TestDatabase, sql: string, params: unknown[] = []) {
  const restore = async () => {
    await setSystem(db, 'synchronous_standby_names', null);
    await setSystem(db, 'synchronous_commit', null);
  };
  await setSystem(db, 'synchronous_commit', 'local');
  await setSystem(db, 'synchronous_standby_names', 'walsync_test_absent_standby');
  const writer = new pg.Client({ connectionString: db.url });
  await writer.connect();
  const [{ pid }] = (await writer.query<{ pid: number }>(`SELECT pg_backend_pid() AS pid`)).rows as [{ pid: number }];
  await writer.query(`SET synchronous_commit = on`);
  const committed = writer.query(sql, params);
  committed.catch(() => undefined);
  await waitFor('the commit to wait for the standby', async () => (await db.query(`SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND wait_event = 'SyncRep'`, [pid])).length > 0);
  return {
    async release() {
      await db.query(`SELECT pg_cancel_backend($1)`, [pid]);
      await committed;
      await writer.end();
    },
    restore,
  };
}
