/** The client's public surface, shared by Node, the worker and the tabs (no database code here). */
import type { ChangeResult } from '@walsync/db/browser';

/**
 * Where the sync connection stands (see the state diagram in ./sync-connection.ts):
 * - `connecting`: opening the socket, or waiting for the server's welcome;
 * - `syncing`: hydrating from a snapshot, or pushing local writes;
 * - `up-to-date`: live, with nothing unsent;
 * - `offline`: no connection (the server is away, the network is gone, or the server refused this
 *   client: the `error` event says which); it retries by itself unless refused;
 * - `error`: stopped by an error that retrying cannot fix (a wrong URL, a migration this replica
 *   cannot apply); the `error` event says what to do;
 * - `closed`: `close()` was called.
 */
export type SyncStatus = 'connecting' | 'syncing' | 'up-to-date' | 'offline' | 'error' | 'closed';

export interface SyncEvents {
  captured: [];
  push: [{ sent: number; applied: number; rejected: number; errors: number }];
  'pull:received': [{ changes: number; position: string }];
  'pull:applied': [{ changes: number; position: string }];
  conflict: [{ table: string; pk: Record<string, unknown>; result: ChangeResult }];
  error: [Error];
  'bootstrap:start': [{ total: Record<string, number> }];
  'bootstrap:progress': [{ table: string; sent: number; total: number }];
  'bootstrap:complete': [{ position: string }];
  status: [SyncStatus];
}

export type SyncClientErrorCode =
  | 'locked'
  | 'corrupt_database'
  | 'migration_failed'
  | 'refused'
  | 'bad_url'
  | 'bad_server_message'
  | 'apply_failed'
  | 'server_error'
  /** A follower tab's statement was out when the leader tab closed: it may or may not have run. */
  | 'leader_changed'
  | 'closed';

const BRAND = Symbol.for('walsync.client_error');

/** Every error the client reports: a `code` to act on, and the `cause` when there is one. */
export class SyncClientError extends Error {
  readonly [BRAND] = true;

  constructor(
    readonly code: SyncClientErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'SyncClientError';
  }

  /** True for a SyncClientError from any build of this package (the Node and browser bundles are separate). */
  static is(value: unknown, code?: SyncClientErrorCode): value is SyncClientError {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[BRAND] === true && (code === undefined || (value as SyncClientError).code === code);
  }
}

export interface SyncClientOptions {
  /**
   * The server: its origin (`http://localhost:3000`, `https://sync.example.com`) or its sync
   * endpoint (`ws://localhost:3000/sync`, `wss://…/sync`).
   */
  url: string;
  /** A JWT for the user (HS256, `sub` = the user's id). */
  token: string;
  /** Node: a directory or `memory://`. Browser: `idb://<name>`. */
  dataDir: string;
  /** Kept in the database after the first run; given here only to choose it. */
  clientId?: string;
}

/**
 * What every walsync client offers, in Node and in each browser tab alike.
 *
 * @example
 *   const client: SyncHandle = await createSyncClient({ url, token, dataDir });
 *   client.on('status', (status) => render(status));
 *   await client.ready;
 */
export interface SyncHandle<Db = unknown> {
  /** The PGlite database: plain SQL; local writes to synced tables are captured and pushed. */
  readonly db: Db;
  readonly clientId: string;
  readonly status: SyncStatus;
  /**
   * Resolves once migrations are applied and the first hydration is done: at once for a replica
   * that finished it before (it works offline); rejects when the client cannot start (a refused
   * token, a wrong URL, a migration that fails).
   */
  readonly ready: Promise<void>;
  on<K extends keyof SyncEvents>(event: K, listener: (...args: SyncEvents[K]) => void): () => void;
  /** Resolves when the server answered every pending local change and the replica is stored. */
  flush(): Promise<void>;
  /** Resolves when every write committed so far is in storage. */
  durable(): Promise<void>;
  close(): Promise<void>;
}
