/** Messages between the leader's worker and every tab of one database, on one BroadcastChannel. */
import type { SubscriptionRef } from '@walsync/db/browser';
import type { Storage } from './replica-names';
import { SyncClientError, type SyncStatus } from './types';

export interface SerializedError {
  name: string;
  message: string;
  code?: string;
}

export type LeaderMessage =
  /** `leader`: the leading worker's id (each worker makes its own), so a tab knows when another took over. */
  | { type: 'state' | 'leader'; leader: string; status: SyncStatus; clientId: string; ready: boolean; error?: SerializedError; storage?: Storage }
  | { type: 'event'; name: string; args: unknown[] }
  | { type: 'flushed'; id: string; error?: SerializedError }
  | { type: 'durable'; id: string }
  /** The answer to a follower tab's `query`: its result, or the error as plain data. */
  | { type: 'result'; id: string; result?: unknown; error?: Record<string, unknown> }
  /** A tab's subscription is ready (its rows are in the replica), or cannot be held; or its unsubscribe is done. */
  | { type: 'subscribed'; id: string; error?: SerializedError }
  | { type: 'unsubscribed'; id: string; error?: SerializedError };

export type TabMessage =
  | { type: 'hello' }
  | { type: 'flush' | 'durable'; id: string }
  /** A follower tab's statement, answered by the leader's worker in one message (`exec`: several statements, no parameters). */
  | { type: 'query'; id: string; sql: string; params?: unknown[]; options?: Record<string, unknown>; exec?: boolean }
  /** A tab's `subscribe` / `unsubscribe`, run by the leader's client (answered `subscribed` / `unsubscribed`). */
  | { type: 'subscribe' | 'unsubscribe'; id: string; subscription: SubscriptionRef };

export const channelName = (dataDir: string) => `walsync:${dataDir}`;

/** Errors cross the channel as plain data (a structured clone drops an Error's own fields such as `code`). */
export function serializeError(error: unknown): SerializedError {
  const { name, message, code } = error as { name?: string; message?: string; code?: string };
  return { name: name ?? 'Error', message: message ?? String(error), ...(code ? { code } : {}) };
}

/** The error `serializeError` sent, in the tab that receives it: a SyncClientError again where it had a code. */
export function reviveError(error: SerializedError): Error {
  return error.code ? new SyncClientError(error.code as SyncClientError['code'], error.message) : Object.assign(new Error(error.message), { name: error.name });
}
