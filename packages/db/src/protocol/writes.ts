import { z } from 'zod';
import { NODE_ID_PATTERN } from '../schema/hlc';

/** Limits the server enforces on a write batch (and a client should respect when it batches). */
export const WRITE_LIMITS = {
  maxChangesPerBatch: 500,
  /** Serialised size of one change's `data`. */
  maxChangeBytes: 64 * 1024,
  /** Serialised size of a whole request. */
  maxBatchBytes: 2 * 1024 * 1024,
} as const;

const uuid = z.string().regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i, 'must be a uuid');

/**
 * One local write, as a client pushes it. `pk` holds the primary key columns; `data` the columns
 * written (all required ones for an insert, the changed ones for an update, nothing for a delete,
 * which the server stores as a tombstone).
 */
export const ChangeSchema = z.strictObject({
  changeId: uuid,
  table: z.string().min(1).max(63),
  op: z.enum(['insert', 'update', 'delete']),
  pk: z.record(z.string(), z.unknown()),
  data: z.record(z.string(), z.unknown()).default({}),
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

export type Row = Record<string, unknown>;

/** Why a well-formed change did not become the server's state; `row` is what the server holds instead. */
export type RejectReason = 'stale' | 'not_found' | 'constraint';

/** The input was wrong: the change can never apply as it is. */
export const WRITE_ERROR_CODES = [
  'invalid_change',
  'unknown_table',
  'read_only_table',
  'unknown_column',
  'invalid_value',
  'forbidden_scope',
  'too_large',
  'clock_skew',
  'replayed_change',
  'internal',
] as const;
export type WriteErrorCode = (typeof WRITE_ERROR_CODES)[number];

export type ChangeResult =
  | {
      changeId: string;
      status: 'applied';
      /** The change commits at or before this LSN: once a client's position reaches it, the echo is behind it. */
      lsn: string;
      /** The row as the server stored it (defaults, triggers, version): the client must end with this. */
      row: Row | null;
      /** Set when this answers a retry of a change already applied. */
      duplicate?: true;
    }
  | { changeId: string; status: 'rejected'; reason: RejectReason; message: string; row: Row | null }
  | { changeId: string; status: 'error'; code: WriteErrorCode; message: string };

export interface WriteBatchResult {
  results: ChangeResult[];
}
