import { SERVER_MANAGED_COLUMNS, type SyncedTable } from '../schema/tables';

/**
 * Column-level last-writer-wins. Every synced row keeps, beside `hlc` (the newest write of any of
 * its columns), the HLC of the last write of each column in `column_hlcs`; a column without an
 * entry was last written at the row's `hlc` (so rows from before per-column clocks, `{}`, behave as
 * they did). A write applies, column by column, the columns whose clock it is newer than. The
 * tombstone is the column `deleted_at`: a delete writes it (to now), an insert of an existing row
 * writes it back to NULL (a resurrection), an update never touches it — so a delete wins over every
 * older write to the row's existence, an update newer than a delete changes the (hidden) values and
 * leaves the row deleted, and an insert newer than the delete brings the row back. The final row is
 * the newest value of every column whatever the order writes arrive in: every replica ends the same.
 */
export const COLUMN_CLOCKS = 'column_hlcs';

/** The columns of `table` that carry a clock: its own columns (not the key, not the server's) and the tombstone. */
export function clockedColumns(table: SyncedTable): string[] {
  const managed: ReadonlySet<string> = new Set(SERVER_MANAGED_COLUMNS);
  const own = table.columns.map((column) => column.name).filter((name) => !table.primaryKey.includes(name) && !managed.has(name));
  return [...own, 'deleted_at'];
}

export interface ColumnMerge {
  /** The written columns whose clock the write is newer than: they take its values. */
  applied: string[];
  /** The written columns a later write holds: they keep the row's values. */
  lost: string[];
  /** The row's hlc afterwards: the newest clock of any column. */
  hlc: string;
  /** column_hlcs afterwards: the clocks that differ from `hlc`. */
  clocks: Record<string, string>;
}

/**
 * Decides a write of the columns `written` at `hlc` to a row whose clocks are `row` (`columns`: the
 * table's clocked columns). HLCs compare as strings (wall, counter, node).
 */
export function mergeColumns(columns: readonly string[], row: { hlc: unknown; clocks: unknown }, written: readonly string[], hlc: string): ColumnMerge {
  const rowHlc = typeof row.hlc === 'string' ? row.hlc : '';
  const stored = row.clocks && typeof row.clocks === 'object' ? (row.clocks as Record<string, unknown>) : {};
  const clockOf = (column: string) => (typeof stored[column] === 'string' ? (stored[column] as string) : rowHlc);
  const applied = written.filter((column) => hlc > clockOf(column));
  const lost = written.filter((column) => !(hlc > clockOf(column)));
  const newest = applied.length > 0 && hlc > rowHlc ? hlc : rowHlc;
  const taken = new Set(applied);
  const clocks: Record<string, string> = {};
  for (const column of columns) {
    const clock = taken.has(column) ? hlc : clockOf(column);
    if (clock !== newest) clocks[column] = clock;
  }
  return { applied, lost, hlc: newest, clocks };
}
