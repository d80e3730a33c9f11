import { PROTOCOL_VERSION, type ServerMessage, ServerMessageSchema, formatIssues } from '@walsync/db/browser';
import { SyncClientError } from './types';

/** The parts of a WHATWG WebSocket the client uses: the browser's own, or `ws` in Node. */
export interface SocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  /** `ws` only: drops the connection without a closing handshake (a silent peer never answers one). */
  terminate?(): void;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onerror: ((event: unknown) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
}
export type SocketFactory = (url: string) => SocketLike;

/** Where a client connects: the WebSocket URL, and the plain HTTP URL of the same endpoint. */
export interface SyncEndpoint {
  socketUrl: string;
  httpUrl: string;
}

/**
 * Reads the `url` option: the server's origin (`http(s)://host[:port][/base]`, the client adds
 * `/sync`) or the sync endpoint itself (`ws(s)://host/…/sync`). Anything else is a `bad_url` error
 * at once, naming what was given and what is expected.
 *
 * @example
 *   syncEndpoint('http://localhost:3000').socketUrl      // 'ws://localhost:3000/sync'
 *   syncEndpoint('wss://example.com/sync').httpUrl      // 'https://example.com/sync'
 */
export function syncEndpoint(url: string): SyncEndpoint {
  const expected = 'give the server\'s origin (http://host:3000) or its sync endpoint (ws://host:3000/sync)';
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new SyncClientError('bad_url', `${JSON.stringify(url)} is not a URL; ${expected}`);
  }
  if (parsed.username || parsed.password) throw new SyncClientError('bad_url', `the URL ${JSON.stringify(redact(parsed))} carries credentials; the token goes in the token option`);
  if (parsed.search || parsed.hash) throw new SyncClientError('bad_url', `the URL ${JSON.stringify(url)} has a query or fragment; ${expected}`);
  const path = parsed.pathname.replace(/\/+$/, '');
  const secure = parsed.protocol === 'https:' || parsed.protocol === 'wss:';
  if (parsed.protocol === 'http:' || parsed.protocol === 'https:') {
    if (path.endsWith('/sync')) return at(parsed, secure, path);
    return at(parsed, secure, `${path}/sync`);
  }
  if (parsed.protocol === 'ws:' || parsed.protocol === 'wss:') {
    if (path === '' ) return at(parsed, secure, '/sync');
    if (path.endsWith('/sync')) return at(parsed, secure, path);
    throw new SyncClientError('bad_url', `${JSON.stringify(url)} is a WebSocket URL that does not end in /sync; ${expected}`);
  }
  throw new SyncClientError('bad_url', `${JSON.stringify(url)} has the scheme ${parsed.protocol} — ${expected}`);
}

function at(url: URL, secure: boolean, path: string): SyncEndpoint {
  const host = url.host;
  return { socketUrl: `${secure ? 'wss' : 'ws'}://${host}${path}`, httpUrl: `${secure ? 'https' : 'http'}://${host}${path}` };
}

function redact(url: URL): string {
  return `${url.protocol}//***@${url.host}${url.pathname}`;
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
export function parseServerMessage(data: unknown): ServerMessage | { type: 'unusable'; problem: string } {
  try {
    const parsed = ServerMessageSchema.safeParse(JSON.parse(String(data)));
    return parsed.success ? parsed.data : { type: 'unusable', problem: formatIssues(parsed.error, 'message') };
  } catch (error) {
    return { type: 'unusable', problem: (error as Error).message };
  }
}
