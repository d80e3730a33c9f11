import type pg from 'pg';
import { quoteIdent as quote } from '../rules/sql';

/**
 * Schema steps that run at every server start take their lock only when there is something to do.
 * `ALTER TABLE … ADD COLUMN IF NOT EXISTS` (and `CREATE INDEX IF NOT EXISTS`, `CREATE OR REPLACE
 * TRIGGER`, `ALTER PUBLICATION`) queue for a table lock even when nothing changes, behind every open
 * transaction on the table — and every later query on the table queues behind them. A restarted
 * server once waited so behind a snapshot that was itself waiting for capture, which waited behind
 * the ALTER: nothing moved again.
 */
type Queryable = Pick<pg.ClientBase, 'query'>;

/** Whether `name` (a table or an index of the search path) exists. */
export async function relationExists(client: Queryable, name: string): Promise<boolean> {
  return (await client.query<{ found: boolean }>(`SELECT to_regclass($1) IS NOT NULL AS found`, [quote(name)])).rows[0]!.found;
}

/** Adds `column` (its SQL definition after the name) to `table` unless the table has it. */
export async function addColumnIfMissing(client: Queryable, table: string, column: string, definition: string): Promise<void> {
  const found = await client.query(
    `SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass($1) AND attname = $2 AND NOT attisdropped`,
    [quote(table), column],
  );
  if (found.rowCount === 0) await client.query(`ALTER TABLE ${quote(table)} ADD COLUMN IF NOT EXISTS ${quote(column)} ${definition}`);
}

/** Runs `sql` (a CREATE INDEX) unless an index `name` exists. */
export async function createIndexIfMissing(client: Queryable, name: string, sql: string): Promise<void> {
  if (!(await relationExists(client, name))) await client.query(sql);
}
