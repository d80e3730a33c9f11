import type pg from 'pg';

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
}

const COLUMNS = `lsn text, commit_lsn bigint, op_index int, table_name text, operation text, data jsonb, old_data jsonb,
  transaction_id text, schema_version text, "timestamp" timestamptz, client_id text, scope_id uuid`;
const NAMES = 'lsn, commit_lsn, op_index, table_name, operation, data, old_data, transaction_id, schema_version, "timestamp", client_id, scope_id';

/**
 * Appends whole transactions to change_history in one database transaction, then signals sessions.
 * A position (commit LSN, op index) already stored is skipped: a replay after a crash adds nothing.
 */
export async function appendToHistory(client: pg.ClientBase, changes: CapturedChange[], capturedUpTo: string): Promise<void> {
  await client.query('BEGIN');
  try {
    if (changes.length > 0) {
      await client.query(
        `INSERT INTO change_history (${NAMES}) SELECT ${NAMES} FROM json_to_recordset($1::json) AS x(${COLUMNS})
         ON CONFLICT ON CONSTRAINT change_history_position DO NOTHING`,
        [JSON.stringify(changes)],
      );
      await client.query(`SELECT pg_notify($1, $2)`, [CHANGES_CHANNEL, capturedUpTo]);
    }
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
}
