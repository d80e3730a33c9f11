/** The client's public surface, shared by Node, the worker and the tabs (no database code here). */
import type { ChangeResult, SubscriptionParams, SubscriptionRef } from '@walsync/db/browser';

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
  /** A snapshot begins: the first hydration, or (with `subscription`) a subscription's rows. */
  'bootstrap:start': [{ total: Record<string, number>; subscription?: SubscriptionRef }];
  'bootstrap:progress': [{ table: string; sent: number; total: number; subscription?: SubscriptionRef }];
  'bootstrap:complete': [{ position: string; subscription?: SubscriptionRef }];
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
  /** A subscription no definition allows (unknown name, bad parameters), or subscriptions for a replica that holds its whole scope. */
  | 'invalid_subscription'
  /** The server refused a subscription (outside the user's scope, or unknown to it): nothing of it is held. */
  | 'subscription_refused'
  /** The replica's own VACUUM, ANALYZE or CHECKPOINT failed (see ReplicaUpkeep): syncing goes on; the next write tries again. */
  | 'upkeep_failed'
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
  /**
   * Hold only these subscriptions' rows (and the workspace rows they need), not the user's whole
   * scope. Decided when the replica is made: a replica made without it holds its whole scope. A
   * reopened replica resumes the subscriptions it stored, and adds these.
   */
  subscriptions?: SubscriptionInput[];
}

/** A subscription by name, with its parameters (typed by the schema package's definitions). */
export type SubscriptionInput = { [N in keyof SubscriptionParams]: { name: N; params: SubscriptionParams[N] } }[keyof SubscriptionParams];

/**
 * One subscription of a client.
 *
 * @example
 *   const project = client.subscribe('project', { projectId });
 *   await project.ready;         // its rows are in the replica
 *   await project.unsubscribe(); // the rows no other subscription holds go (unsent ones stay until answered)
 */
export interface Subscription {
  readonly name: string;
  readonly params: SubscriptionRef['params'];
  /** Resolves once the subscription's rows are in the replica; rejects (`subscription_refused`, `invalid_subscription`) when it cannot be held. */
  readonly ready: Promise<void>;
  /** Drops the subscription: resolves once the rows only it held are removed. */
  unsubscribe(): Promise<void>;
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
  /**
   * Holds a subscription's rows too (a client made with `subscriptions`): see `Subscription`. Stored
   * in the replica, so a reopened client resumes it, offline too.
   */
  subscribe<N extends SubscriptionInput['name']>(name: N, params: SubscriptionParamsOf<N>): Subscription;
  /** Drops a subscription: resolves once the rows no other subscription holds are removed (unsent ones stay until answered). */
  unsubscribe<N extends SubscriptionInput['name']>(name: N, params: SubscriptionParamsOf<N>): Promise<void>;
  close(): Promise<void>;
}

/** The parameters of the subscription named `N`. */
export type SubscriptionParamsOf<N extends SubscriptionInput['name']> = Extract<SubscriptionInput, { name: N }>['params'];
