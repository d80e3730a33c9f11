/** The rows a write batch read before deciding, as its decisions and its reference checks look them up. */
import type { Row, SyncedTable } from '@walsync/db/server';
import type { PreparedChange } from './prepare-change';

/** What the batch knows of a row while deciding: whether it exists, its scope and its HLC. */
export interface KnownRow {
  scope: unknown;
  hlc: unknown;
  /** The row as read before the batch (rejections within the batch re-read it in SQL). */
  row: Row;
  /** An earlier change of the batch writes the row (`row` is then not what it will be). */
  written?: true;
}

/** The current row of a change that moves it to another workspace (its kept references must follow). */
export function movedRow(change: PreparedChange, existing: KnownRow | undefined): Row | undefined {
  return existing && change.scope !== undefined && change.scope !== existing.scope ? existing.row : undefined;
}

/** A row's key within the batch: its table and primary key values. */
export const keyOf = (table: SyncedTable, values: unknown[]) => `${table.name}:${JSON.stringify(values)}`;
