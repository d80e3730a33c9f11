import type { RowsAnswer } from '@walsync/db/browser';
import { syncEndpoint } from './endpoint';
import { SyncClientError, type SubscriptionInput } from './types';

export interface ReadRowsOptions {
  /** The server, as for `createSyncClient` (its origin, or its `/sync` endpoint). */
  url: string;
  token: string;
  /** Without it the user's whole scope; with it the tables every client holds whole and these subscriptions' rows. */
  subscriptions?: SubscriptionInput[];
  signal?: AbortSignal;
}

/**
 * The rows a client would hold, read once from the server (`POST /rows`), table by table: what a
 * page can paint while its new replica starts and hydrates, seconds before the replica answers.
 * Nothing is stored: the replica stays the truth, and its answers replace these rows. Tombstones are
 * included (rows whose `deleted_at` is set), as in a snapshot. Rejects with a `SyncClientError`:
 * `bad_url`, `refused` (the token; a read larger than the server answers), `invalid_subscription`,
 * `subscription_refused` (outside the user's scope), `server_error` (unreachable, or failed).
 *
 * @example
 *   const tables = await readRows({ url: location.origin, token, subscriptions: [{ name: 'project', params: { projectId } }] });
 *   paint(tables.task.filter((task) => !task.deleted_at));
 */
export async function readRows(options: ReadRowsOptions): Promise<RowsAnswer['tables']> {
  const url = syncEndpoint(options.url).httpUrl.replace(/\/sync$/, '/rows');
  let response: Response;
  try {
    response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${options.token}` },
      body: JSON.stringify(options.subscriptions ? { subscriptions: options.subscriptions } : {}),
      signal: options.signal,
    });
  } catch (error) {
    if (options.signal?.aborted) throw error;
    throw new SyncClientError('server_error', `the server at ${url} could not be reached: ${(error as Error).message}`, { cause: error });
  }
  const body = (await response.json().catch(() => undefined)) as (RowsAnswer & { error?: { code: string; message: string } }) | undefined;
  if (response.ok && body?.tables) return body.tables;
  const message = body?.error?.message ?? `${url} answered ${response.status}`;
  const code = body?.error?.code;
  if (code === 'forbidden') throw new SyncClientError('subscription_refused', message);
  if (code === 'unknown_subscription' || code === 'invalid_params' || code === 'invalid_request') throw new SyncClientError('invalid_subscription', message);
  if (response.status === 401 || response.status === 413) throw new SyncClientError('refused', message);
  throw new SyncClientError('server_error', message);
}
