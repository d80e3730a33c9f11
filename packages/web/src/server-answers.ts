/** What a server says: a frame read as a message, and why a socket did not open (asked over HTTP). */
import { PROTOCOL_VERSION, type ServerMessage, ServerMessageSchema, formatIssues } from '@walsync/db/browser';
import type { SyncEndpoint } from './endpoint';
import { SyncClientError } from './types';

type SnapshotBatch = Extract<ServerMessage, { type: 'snapshot_batch' }>;

/** A server message as the client reads it: a snapshot page's rows may stay JSON text (see `snapshotBatchText`). */
export type ClientServerMessage = Exclude<ServerMessage, { type: 'snapshot_batch' }> | (Omit<SnapshotBatch, 'rows'> & { rows: SnapshotBatch['rows'] | string });

/** A snapshot page as the server writes it: its rows are the JSON text after this, up to the closing brace. */
const SNAPSHOT_BATCH = /^\{"type":"snapshot_batch","table":("(?:[^"\\]|\\.){1,200}"),"sent":(\d{1,15}),"total":(\d{1,15}),"rows":(?=\[)/;

/**
 * A snapshot page in the server's own layout, read without parsing its rows: they go to the replica
 * as the JSON text they came in (parsing a page of thousands of rows into objects, checking them
 * and writing them back as JSON for the database cost as much as storing them). The database reads
 * the text as a JSON array of objects, or the page fails as a whole with its error (nothing of it is
 * applied). Any other layout is read the usual way.
 */
function snapshotBatchText(text: string): ClientServerMessage | undefined {
  const match = SNAPSHOT_BATCH.exec(text);
  if (!match || !text.endsWith(']}')) return undefined;
  return { type: 'snapshot_batch', table: JSON.parse(match[1]!) as string, sent: Number(match[2]), total: Number(match[3]), rows: text.slice(match[0].length, -1) };
}

/**
 * Why a socket to `endpoint` did not open, asked over plain HTTP (a WebSocket's failure says
 * nothing): a walsync server answers `GET /sync` with 426 and `{ walsync }`. Resolves to
 * - `reachable`: a walsync server is there (the failure was passing: retry);
 * - `unreachable`: nothing answers (the server or the network is away: retry);
 * - a `bad_url` SyncClientError: something answers that is not a walsync sync endpoint.
 * A 502/503/504 (a proxy whose server is down) counts as unreachable.
 */
export async function probeEndpoint(endpoint: SyncEndpoint, timeoutMs = 5_000): Promise<'reachable' | 'unreachable' | SyncClientError> {
  const signal = AbortSignal.timeout(timeoutMs);
  let response: Response;
  try {
    response = await fetch(endpoint.httpUrl, { signal, headers: { accept: 'application/json' } });
  } catch {
    // In a browser, an answer another origin does not let this page read fails like no answer:
    // an opaque request tells the two apart (a walsync server lets every origin read its answer).
    if (typeof window === 'undefined' && typeof (globalThis as { WorkerGlobalScope?: unknown }).WorkerGlobalScope === 'undefined') return 'unreachable';
    const opaque = await fetch(endpoint.httpUrl, { signal, mode: 'no-cors' }).then(
      () => true,
      () => false,
    );
    return opaque ? notWalsync(endpoint, 'a server that does not speak walsync (it gives this page no CORS access)') : 'unreachable';
  }
  if ([502, 503, 504].includes(response.status)) return 'unreachable';
  const body = (await response.json().catch(() => undefined)) as { walsync?: { protocol?: unknown } } | undefined;
  if (response.status === 426 && body?.walsync) {
    if (body.walsync.protocol !== PROTOCOL_VERSION) {
      return new SyncClientError('bad_url', `${endpoint.socketUrl} speaks walsync protocol ${String(body.walsync.protocol)}, this client ${PROTOCOL_VERSION}; update the client or the server`);
    }
    return 'reachable';
  }
  return notWalsync(endpoint, `HTTP ${response.status}${response.status === 404 ? ' (no such endpoint)' : ''}`);
}

function notWalsync(endpoint: SyncEndpoint, what: string): SyncClientError {
  return new SyncClientError(
    'bad_url',
    `${endpoint.socketUrl} is not a walsync sync endpoint: it answered ${what}. Give the server's origin (http://host:3000) or its /sync endpoint`,
  );
}

/** A frame as a server message, or what is wrong with it. */
export function parseServerMessage(data: unknown): ClientServerMessage | { type: 'unusable'; problem: string } {
  try {
    const text = String(data);
    const batch = snapshotBatchText(text);
    if (batch) return batch;
    const parsed = ServerMessageSchema.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : { type: 'unusable', problem: formatIssues(parsed.error, 'message') };
  } catch (error) {
    return { type: 'unusable', problem: (error as Error).message };
  }
}
