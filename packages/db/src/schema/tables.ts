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
  /**
   * Foreign keys to other synced tables (one column each, to their primary key): a row may only
   * reference a row of its own workspace.
   */
  references?: SyncedReference[];
  /** Columns holding a user id that must be a member of the row's workspace (e.g. an author). */
  members?: string[];
  /** Columns the schema's triggers maintain (see SyncOptions.derived): never written by a client. */
  derived?: string[];
}

export interface SyncedReference {
  column: string;
  table: string;
}

/**
 * The columns the sync machinery sets on every synced row (timestamps, version, clock, column
 * clocks, origin, tombstone): a client's write never sends them and the server ignores them if it does.
 */
export const SERVER_MANAGED_COLUMNS = ['created_at', 'updated_at', 'version', 'hlc', 'column_hlcs', 'origin_client_id', 'deleted_at'] as const;

/** Synced tables clients read but may not write: membership is the basis of every access decision. */
export const READ_ONLY_TABLES: ReadonlySet<string> = new Set(['workspace_member']);
