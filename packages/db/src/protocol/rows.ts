import { z } from 'zod';
import { SubscriptionRefSchema } from '../schema/subscription';

/**
 * `POST /rows`: a one-off read of the rows a client would hold, for a page to paint while its new
 * replica hydrates (docs/protocol.md). Without `subscriptions` the user's whole scope; with them,
 * the tables every client holds whole and the rows those subscriptions select (`[]`: those tables only).
 */
export const ROWS_LIMITS = {
  /** Subscriptions one read may name. */
  maxSubscriptions: 100,
  /** Rows one read may answer (all tables together); a larger read is refused, nothing is sent. */
  maxRows: 50_000,
} as const;

export const RowsRequestSchema = z.strictObject({
  subscriptions: z.array(SubscriptionRefSchema).max(ROWS_LIMITS.maxSubscriptions).optional(),
});
export type RowsRequest = z.infer<typeof RowsRequestSchema>;

/** The answer: each table's rows (tombstones included, as in a snapshot), as Postgres' row_to_json made them. */
export interface RowsAnswer {
  tables: Record<string, Array<Record<string, unknown>>>;
}
