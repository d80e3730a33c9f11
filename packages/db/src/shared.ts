/**
 * What both builds of @walsync/db export (dist/server.cjs and dist/browser.mjs): the protocol, the
 * shared rules and the schema as data. One list, so the two entries cannot drift apart.
 */
export { validateMigration, validateMigrationList } from './client/validate-migrations';
export { WalsyncError, isWalsyncError, messageOf, type WalsyncErrorCode } from './errors';
export * from './protocol/sync';
export * from './protocol/writes';
export * from './protocol/rows';
export { type Position, PositionSchema, comparePositions, formatPosition, isPosition, parsePosition } from './rules/position';
export { collapseRuns, latestPerKey, rowKey } from './rules/change-runs';
export { COLUMN_CLOCKS, type ColumnMerge, clockedColumns, mergeColumns } from './rules/column-clocks';
export { sha256Hex } from './rules/digest';
export { retryDelay, type RetryPolicy } from './rules/retry';
export { quoteIdent, quoteLiteral } from './rules/sql';
export { UUID_PATTERN, formatIssues } from './rules/validation';
export { HLC_VARIABLES, HLC_WALL_PLPGSQL, NODE_ID_PATTERN, hlcAfterPlpgsql, hlcAfterSql, formatHlc, parseHlc, type Hlc } from './schema/hlc';
export { ExtractedMigrationSchema, migrationChecksum, type ExtractedMigration, type MigrationQuery } from './schema/migration';
export { READ_ONLY_TABLES, SERVER_MANAGED_COLUMNS, type SyncedColumn, type SyncedReference, type SyncedTable } from './schema/tables';
export {
  type CheckedSubscription,
  type ParameterType,
  type ParamsOf,
  type SubscriptionDefinition,
  type SubscriptionProblem,
  type SubscriptionRef,
  type TableRule,
  SubscriptionMatcher,
  SubscriptionRefSchema,
  checkSubscription,
  defineSubscription,
  subscribedTables,
  subscriptionKey,
} from './schema/subscription';
export { type SubscriptionParams, project as projectSubscription, task as taskSubscription, subscriptionDefinitions } from './subscriptions';
