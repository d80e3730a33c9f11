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

  /** An outbox entry exists for the row `alias` (a record with the table's columns). */
  private pendingWrite(table: SyncedTable, alias: string): string {
    return `EXISTS (SELECT 1 FROM walsync_outbox o WHERE o.table_name = '${table.name}' AND o.pk = ${this.key(table, alias)})`;
  }

  private key(table: SyncedTable, alias: string): string {
    return `jsonb_build_object(${table.primaryKey.map((name) => `'${name}', ${alias}.${quote(name)}`).join(', ')})`;
  }

  /** Sets the server's row `row` (null: deleted) aside for a row with unsent local writes, unless a newer one is there. */
  private deferSql(table: SyncedTable, row: string, version: string, from: string, alias: string): string {
    return `INSERT INTO walsync_deferred (table_name, pk, row, version)
              SELECT '${table.name}', ${this.key(table, alias)}, ${row}, ${version} FROM ${from} WHERE ${this.pendingWrite(table, alias)}
              ON CONFLICT (table_name, pk) DO UPDATE SET row = EXCLUDED.row, version = EXCLUDED.version WHERE walsync_deferred.version <= EXCLUDED.version`;
  }

  /**
   * Upserts `source` rows. With `pending`, a row with unsent local writes is deferred instead (its
   * last answer applies the newer of the two); with `newerOnly`, a row never replaces a newer
   * version: a change the stream delivers after this client's own answer brought the row further on.
   */
  private upsertSql(table: SyncedTable, source: string, options: { pending: boolean; newerOnly: boolean }): string {
    const columns = table.columns.map((column) => quote(column.name));
    const name = quote(table.name);
    const update = `ON CONFLICT (${table.primaryKey.map(quote).join(', ')}) DO UPDATE SET (${columns.join(', ')}) = ROW(${columns.map((column) => `EXCLUDED.${column}`).join(', ')})
                    ${options.newerOnly ? `WHERE ${name}.version <= EXCLUDED.version` : ''}`;
    if (!options.pending) return `INSERT INTO ${name} SELECT * FROM ${source} ${update}`;
    return `WITH incoming AS MATERIALIZED (SELECT * FROM ${source}),
                 held AS (${this.deferSql(table, 'to_jsonb(r)', 'r.version', 'incoming r', 'r')})
            INSERT INTO ${name} SELECT * FROM incoming r WHERE NOT ${this.pendingWrite(table, 'r')} ${update}`;
  }

  /** Whole rows, e.g. a snapshot page (unique keys). An empty outbox spares the per-row pending check. */
  async upsertRows(tx: Transaction, tableName: string, rows: Row[]): Promise<void> {
    const table = this.table(tableName);
    const pending = (await tx.query<{ any: boolean }>(`SELECT EXISTS (SELECT 1 FROM walsync_outbox) AS any`)).rows[0]!.any;
    await tx.query(this.upsertSql(table, `jsonb_populate_recordset(NULL::${quote(table.name)}, $1::jsonb)`, { pending, newerOnly: false }), [JSON.stringify(rows)]);
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
          `WITH r AS MATERIALIZED (SELECT * FROM jsonb_populate_record(NULL::${quote(table.name)}, $1::jsonb)),
                held AS (${this.deferSql(table, 'NULL::jsonb', 'coalesce(r.version, 0)', 'r', 'r')})
           DELETE FROM ${quote(table.name)} t USING r WHERE ${match} AND NOT ${this.pendingWrite(table, 'r')}`,
          [JSON.stringify(change.old)],
        );
      } else if (change.data) {
        await tx.query(this.upsertSql(table, `jsonb_populate_record(NULL::${quote(table.name)}, $1::jsonb)`, { pending: true, newerOnly: true }), [JSON.stringify(change.data)]);
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
           AND NOT ${this.pendingWrite(table, 't')}`,
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
   * The server's answer to a pushed change (its outbox entry is gone). Once the row has no other
   * unsent write, it becomes the server's row: the answer's, or a newer one the stream delivered
   * meanwhile (deferred); null or a deferred delete removes it.
   */
  async settle(tx: Transaction, change: { table: string; pk: Row }, result: ChangeResult): Promise<void> {
    if (result.status === 'error') return;
    const table = this.table(change.table);
    const pk = JSON.stringify(change.pk);
    const pending = await tx.query(`SELECT 1 FROM walsync_outbox WHERE table_name = $1 AND pk = $2::jsonb LIMIT 1`, [table.name, pk]);
    if (pending.rows.length > 0) return;
    const deferred = (await tx.query<{ row: Row | null; version: number }>(`DELETE FROM walsync_deferred WHERE table_name = $1 AND pk = $2::jsonb RETURNING row, version`, [table.name, pk])).rows[0];
    let row = result.row;
    if (deferred && (!row || Number(row.version) <= deferred.version)) row = deferred.row;
    if (row) {
      await tx.query(this.upsertSql(table, `jsonb_populate_record(NULL::${quote(table.name)}, $1::jsonb)`, { pending: false, newerOnly: false }), [JSON.stringify(row)]);
    } else {
      const match = table.primaryKey.map((name) => `${quote(name)}::text = $1::jsonb ->> '${name}'`).join(' AND ');
      await tx.query(`DELETE FROM ${quote(table.name)} WHERE ${match}`, [pk]);
    }
  }
}
