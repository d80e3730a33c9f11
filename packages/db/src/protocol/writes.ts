import { z } from 'zod';
import { NODE_ID_PATTERN } from '../schema/hlc';
import { UUID_PATTERN } from '../rules/validation';

/** Limits the server enforces on a write batch (and a client should respect when it batches). */
export const WRITE_LIMITS = {
  maxChangesPerBatch: 500,
  /** Serialised size of one change's `data`. */
  maxChangeBytes: 64 * 1024,
  /** Serialised size of a whole request. */
  maxBatchBytes: 2 * 1024 * 1024,
} as const;

const uuid = z.string().regex(UUID_PATTERN, 'must be a uuid');

/**
 * A row as JSON carries it: an object of column values, each checked where it is written (against
 * the table's columns). One check and no copy: `z.record` rebuilt every row key by key, 20–30 ms of
 * the first 500-row catch-up batch a client parses.
 */
export const RowSchema = z.custom<Record<string, unknown>>((value) => typeof value === 'object' && value !== null && !Array.isArray(value), {
  message: 'expected an object of column values',
});
export type Row = z.infer<typeof RowSchema>;

/**
 * One local write, as a client pushes it. `pk` holds the primary key columns; `data` the columns
 * written (all required ones for an insert, the changed ones for an update, nothing for a delete,
 * which the server stores as a tombstone).
 */
export const ChangeSchema = z.strictObject({
  changeId: uuid,
  table: z.string().min(1).max(63),
  op: z.enum(['insert', 'update', 'delete']),
  pk: RowSchema,
  data: RowSchema.default({}),
  hlc: z.string().max(100),
});
export type Change = z.infer<typeof ChangeSchema>;

/**
 * A batch of changes from one client. Changes are validated one by one, so the batch's shape is
 * checked loosely here and each change gets its own answer.
 */
export const WriteBatchSchema = z.strictObject({
  clientId: z.string().regex(NODE_ID_PATTERN, 'a client id is 1-64 letters, digits, "-" or "_"'),
  changes: z.array(z.unknown()).min(1).max(WRITE_LIMITS.maxChangesPerBatch),
});
export type WriteBatch = z.infer<typeof WriteBatchSchema>;

/** The input was wrong: the change can never apply as it is. */
export const WRITE_ERROR_CODES = [
  'invalid_change',
  'unknown_table',
  'read_only_table',
  'unknown_column',
  'invalid_value',
  'forbidden_scope',
  'forbidden_reference',
  'too_large',
  'clock_skew',
  'replayed_change',
  'internal',
] as const;
export type WriteErrorCode = (typeof WRITE_ERROR_CODES)[number];

/** Why a well-formed change did not become the server's state; `row` is what the server holds instead. */
export const REJECT_REASONS = ['stale', 'not_found', 'constraint'] as const;
export type RejectReason = (typeof REJECT_REASONS)[number];

/** Which written columns a change won and lost (column-level last-writer-wins, rules/column-clocks.ts). */
export const ColumnOutcomeSchema = z.strictObject({ applied: z.array(z.string()), lost: z.array(z.string()) });

/** The server's answer to one change. */
export const ChangeResultSchema = z.union([
  z.strictObject({
    changeId: z.string(),
    status: z.literal('applied'),
    /** The change commits at or before this LSN: once a client's position reaches it, the echo is behind it. */
    lsn: z.string(),
    /** The row as the server stored it (defaults, triggers, version): the client must end with this. */
    row: RowSchema.nullable(),
    /** Set when this answers a retry of a change already applied. */
    duplicate: z.literal(true).optional(),
    /** Column by column: the written columns that took this change's values, and those a later write holds (their values are in `row`). */
    columns: ColumnOutcomeSchema.optional(),
  }),
  z.strictObject({
    changeId: z.string(),
    status: z.literal('rejected'),
    reason: z.enum(REJECT_REASONS),
    message: z.string(),
    row: RowSchema.nullable(),
    /** For `stale`: every written column lost to a later write. */
    columns: ColumnOutcomeSchema.optional(),
  }),
  z.strictObject({ changeId: z.string(), status: z.literal('error'), code: z.enum(WRITE_ERROR_CODES), message: z.string() }),
]);
export type ChangeResult = z.infer<typeof ChangeResultSchema>;

export interface WriteBatchResult {
  results: ChangeResult[];
}
