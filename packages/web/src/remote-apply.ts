import type { Transaction } from '@electric-sql/pglite';
import type { ChangeResult, Row, StreamChange, SyncedTable } from '@walsync/db/browser';

const quote = (identifier: string) => `"${identifier.replace(/"/g, '""')}"`;

/**
 * Writes the server's rows into PGlite. Every statement runs with `walsync.applying = on` (set by
 * the caller's transaction), so nothing here is captured into the outbox, and a row with unsent
 * local changes keeps them: the server's answer to those changes will bring the row up to date.
 */
export class RemoteApply {
  private readonly tables: Map<string, SyncedTable>;

  constructor(readonly syncedTables: SyncedTable[]) {
    this.tables = new Map(syncedTables.map((table) => [table.name, table]));
  }

  private table(name: string): SyncedTable {
    const table = this.tables.get(name);
    if (!table) throw new Error(`the server sent rows of "${name}", which this client does not sync`);
    return table;
  }

  /** `NOT EXISTS` an outbox entry for the row `alias` (a record with the table's columns). */
  private noPendingWrite(table: SyncedTable, alias: string): string {
    const key = table.primaryKey.map((name) => `'${name}', ${alias}.${quote(name)}`).join(', ');
    return `NOT EXISTS (SELECT 1 FROM walsync_outbox o WHERE o.table_name = '${table.name}' AND o.pk = jsonb_build_object(${key}))`;
  }

  private upsertSql(table: SyncedTable, source: string, checkPending = true): string {
    const columns = table.columns.map((column) => quote(column.name));
    return `INSERT INTO ${quote(table.name)} SELECT * FROM ${source} r ${checkPending ? `WHERE ${this.noPendingWrite(table, 'r')}` : ''}
            ON CONFLICT (${table.primaryKey.map(quote).join(', ')}) DO UPDATE SET (${columns.join(', ')}) = ROW(${columns.map((column) => `EXCLUDED.${column}`).join(', ')})`;
  }

  /** Whole rows, e.g. a snapshot page (unique keys). An empty outbox spares the per-row pending check. */
  async upsertRows(tx: Transaction, tableName: string, rows: Row[]): Promise<void> {
    const table = this.table(tableName);
    const pending = (await tx.query<{ any: boolean }>(`SELECT EXISTS (SELECT 1 FROM walsync_outbox) AS any`)).rows[0]!.any;
    await tx.query(this.upsertSql(table, `jsonb_populate_recordset(NULL::${quote(table.name)}, $1::jsonb)`, pending), [JSON.stringify(rows)]);
  }

  /** Whether any synced table holds a row (a replacing snapshot into an empty database has nothing to remove). */
  async hasRows(tx: Transaction): Promise<boolean> {
    const checks = this.syncedTables.map((table) => `EXISTS (SELECT 1 FROM ${quote(table.name)})`).join(' OR ');
    return (await tx.query<{ any: boolean }>(`SELECT (${checks}) AS any`)).rows[0]!.any;
  }

  /** A changes batch, in order. Returns the newest HLC among the rows, for the local clock. */
  async applyChanges(tx: Transaction, changes: StreamChange[]): Promise<string | undefined> {
    let newest: string | undefined;
    for (const change of changes) {
      const table = this.table(change.table);
      if (change.op === 'truncate') {
        await tx.query(`DELETE FROM ${quote(table.name)}`);
      } else if (change.op === 'delete') {
        const match = table.primaryKey.map((name) => `t.${quote(name)} = r.${quote(name)}`).join(' AND ');
        await tx.query(
          `DELETE FROM ${quote(table.name)} t USING jsonb_populate_record(NULL::${quote(table.name)}, $1::jsonb) r WHERE ${match} AND ${this.noPendingWrite(table, 'r')}`,
          [JSON.stringify(change.old)],
        );
      } else if (change.data) {
        await tx.query(this.upsertSql(table, `jsonb_populate_record(NULL::${quote(table.name)}, $1::jsonb)`), [JSON.stringify(change.data)]);
        const hlc = change.data.hlc;
        if (typeof hlc === 'string' && (!newest || hlc > newest)) newest = hlc;
      }
    }
    return newest;
  }

  /** The user left a workspace: its rows go (children first). */
  async removeScope(tx: Transaction, workspaceId: string): Promise<void> {
    for (const table of [...this.syncedTables].reverse()) {
      await tx.query(`DELETE FROM ${quote(table.name)} WHERE ${quote(table.scope)} = $1`, [workspaceId]);
    }
  }

  /** After a replacing snapshot: rows the server no longer has (and that have no unsent writes) go. */
  async removeUnseen(tx: Transaction): Promise<void> {
    for (const table of [...this.syncedTables].reverse()) {
      const key = table.primaryKey.map((name) => `'${name}', t.${quote(name)}`).join(', ');
      await tx.query(
        `DELETE FROM ${quote(table.name)} t WHERE NOT EXISTS (SELECT 1 FROM walsync_snapshot_seen s WHERE s.table_name = '${table.name}' AND s.pk = jsonb_build_object(${key}))
           AND ${this.noPendingWrite(table, 't')}`,
      );
    }
  }

  /** Remembers the keys of a snapshot page, so removeUnseen() knows what the server still has. */
  async markSeen(tx: Transaction, tableName: string, rows: Row[]): Promise<void> {
    const table = this.table(tableName);
    const key = table.primaryKey.map((name) => `'${name}', r -> '${name}'`).join(', ');
    await tx.query(
      `INSERT INTO walsync_snapshot_seen SELECT $1, jsonb_build_object(${key}) FROM jsonb_array_elements($2::jsonb) r ON CONFLICT DO NOTHING`,
      [table.name, JSON.stringify(rows)],
    );
  }

  /**
   * The server's answer to a pushed change: the outbox entry goes, and unless the row has newer
   * unsent changes it becomes the server's row (null: the row does not exist on the server).
   */
  async settle(tx: Transaction, change: { table: string; pk: Row }, result: ChangeResult): Promise<void> {
    if (result.status === 'error') return;
    const table = this.table(change.table);
    if (result.row) {
      await tx.query(this.upsertSql(table, `jsonb_populate_record(NULL::${quote(table.name)}, $1::jsonb)`), [JSON.stringify(result.row)]);
    } else if (result.status === 'rejected') {
      const match = table.primaryKey.map((name) => `${quote(name)}::text = $1::jsonb ->> '${name}'`).join(' AND ');
      const pending = `EXISTS (SELECT 1 FROM walsync_outbox o WHERE o.table_name = '${table.name}' AND o.pk = $1::jsonb)`;
      await tx.query(`DELETE FROM ${quote(table.name)} WHERE ${match} AND NOT ${pending}`, [JSON.stringify(change.pk)]);
    }
  }
}
