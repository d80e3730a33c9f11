import type { SyncedTable } from '@walsync/db/server';
import type pg from 'pg';
import { bigIntToLsn } from '../replication/lsn';
import { castOf, columnMap, quoteIdent } from '../writes/columns';

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
 * A consistent snapshot of some workspaces, tombstones included, paginated by primary key. It runs
 * in one REPEATABLE READ transaction; its position is the newest change_history commit that
 * transaction can see, so every transaction up to the position is in the snapshot and the live
 * stream continues after it with no gap. (A transaction after the position may also be in the
 * snapshot; its changes arrive again as whole-row images, which apply idempotently.)
 *
 * Returns the position (an LSN).
 */
export async function sendSnapshot(client: pg.ClientBase, tables: SyncedTable[], workspaces: string[], sink: SnapshotSink, pageSize = 2_000): Promise<string> {
  await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  try {
    const head = await client.query<{ position: string | null }>(`SELECT max(commit_lsn)::text AS position FROM change_history`);
    const position = bigIntToLsn(BigInt(head.rows[0]!.position ?? 0));
    const total: Record<string, number> = {};
    for (const table of tables) {
      const counted = await client.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${quoteIdent(table.name)} WHERE ${quoteIdent(table.scope)} = ANY($1::uuid[])`, [
        workspaces,
      ]);
      total[table.name] = counted.rows[0]!.n;
    }
    await sink.start(position, total);
    for (const table of tables) {
      const columns = columnMap(table);
      const key = table.primaryKey.map(quoteIdent).join(', ');
      const keyParams = table.primaryKey.map((name, index) => `$${index + 3}::${castOf(columns.get(name)!)}`).join(', ');
      let after: unknown[] | undefined;
      let sent = 0;
      while (sent < total[table.name]!) {
        const page = await client.query<{ rows: string; n: number; last: unknown[] | null }>(
          `WITH page AS (
             SELECT ${key}, to_jsonb(t.*) AS r FROM ${quoteIdent(table.name)} t
              WHERE ${quoteIdent(table.scope)} = ANY($1::uuid[]) ${after ? `AND (${key}) > (${keyParams})` : ''}
              ORDER BY ${key} LIMIT $2)
           SELECT coalesce(json_agg(r ORDER BY ${key}), '[]')::text AS rows, count(*)::int AS n,
                  (SELECT json_build_array(${key}) FROM page ORDER BY ${key} DESC LIMIT 1) AS last
             FROM page`,
          [workspaces, pageSize, ...(after ?? [])],
        );
        const { rows, n, last } = page.rows[0]!;
        if (n === 0) break;
        sent += n;
        after = last ?? undefined;
        await sink.page({ table: table.name, rowsJson: rows, count: n, sent, total: total[table.name]! });
      }
    }
    await client.query('COMMIT');
    return position;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
}
