/** The `url` option, read: where a client connects (no protocol code here, so a tab's bundle stays small). */
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
