/**
 * The synced tables as data, derived from the entities at build time, so that code without
 * TypeORM (browsers, the write API's validation) knows the columns, keys and scope.
 */
export interface SyncedColumn {
  name: string;
  /** The Postgres type as declared: 'uuid', 'text', 'jsonb', 'double precision', 'enum', ... */
  type: string;
  nullable: boolean;
  hasDefault: boolean;
  /** For enum columns: the Postgres type name and its labels. */
  enumName?: string;
  enumValues?: string[];
}

export interface SyncedTable {
  name: string;
  primaryKey: string[];
  /** The column holding the workspace a row belongs to. */
  scope: string;
  columns: SyncedColumn[];
}
