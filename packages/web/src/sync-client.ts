import type { PGlite } from '@electric-sql/pglite';
import { type SyncedTable, syncedTables } from '@walsync/db/browser';
import { SyncEmitter, deferred } from './emitter';
import type { EarlyHello, HelloFields } from './early-hello';
import { type SocketFactory, syncEndpoint } from './endpoint';
import { ReplicaStore } from './replica-store';
import { SyncConnection } from './sync-connection';
import { type Subscription, type SubscriptionInput, type SubscriptionParamsOf, SyncClientError, type SyncClientOptions, type SyncEvents, type SyncHandle, type SyncStatus } from './types';

export interface SyncClientParts {
  db: PGlite;
  options: SyncClientOptions;
  openSocket: SocketFactory;
  /** Releases the one-writer lock on the replica, after the database closed. */
  release?: () => Promise<void>;
  /** How long acks wait to be coalesced (0 in Node; the browser's worker stores to IndexedDB in the background). */
  ackDelayMs?: number;
  /** A captured local write is stored this long after it (the browser lets the tabs' live queries run first). */
  storeDelayMs?: number;
  /** A captured local write is pushed this long after it (the browser lets the tab's live queries re-run first). */
  pushDelayMs?: number;
  tables?: SyncedTable[];
  /** A session opened while PGlite started (Node): taken over when the replica's hello is the same. */
  early?: EarlyHello;
  /** Keeps what the replica's hello says at close, for the next start's early hello. */
  saveHello?: (fields: HelloFields) => void;
}

/**
 * A walsync client over one PGlite replica, the same in Node and in the browser's worker: a
 * ReplicaStore (all of the replica's SQL) and a SyncConnection (the protocol, as a state machine).
 * Made by `createSyncClient`; this class is what it returns in Node.
 */
export class SyncClient implements SyncHandle<PGlite> {
  readonly db: PGlite;
  readonly ready: Promise<void>;
  readonly store: ReplicaStore;
  clientId = '';
  private readonly events = new SyncEmitter();
  private readonly readiness = deferred();
  private connection: SyncConnection | undefined;
  private readonly started = deferred();
  private unlisten: (() => Promise<void>) | undefined;
  private closing: Promise<void> | undefined;

  constructor(private readonly parts: SyncClientParts) {
    this.db = parts.db;
    this.ready = this.readiness.promise;
    this.store = new ReplicaStore(parts.db, parts.tables ?? syncedTables);
    this.store.onStoreFailed = (error) => this.events.emit('error', error);
  }

  get status(): SyncStatus {
    return this.connection?.status ?? (this.closing ? 'closed' : 'connecting');
  }

  on<K extends keyof SyncEvents>(event: K, listener: (...args: SyncEvents[K]) => void): () => void {
    return this.events.on(event, listener);
  }

  /** Opens the replica's state and starts syncing in the background. Throws `bad_url` for a URL that cannot be a walsync server. */
  async start(): Promise<void> {
    try {
      await this.open();
    } catch (error) {
      this.parts.early?.discard();
      throw error;
    }
  }

  private async open(): Promise<void> {
    const endpoint = syncEndpoint(this.parts.options.url);
    const opened = await this.store.open(this.parts.options.clientId);
    this.clientId = opened.clientId;
    await this.store.subscriptions.open(this.parts.options.subscriptions, opened.position === null);
    // Reported once the caller has had a chance to subscribe (createSyncClient has returned).
    if (opened.repaired) setTimeout(() => this.events.emit('error', opened.repaired!), 0);
    // A replica that finished its first sync is usable at once, offline too; the session catches up when it connects.
    if (opened.position !== null) this.readiness.resolve();
    const connection = new SyncConnection(this.store, this.events, {
      endpoint,
      token: this.parts.options.token,
      clientId: this.clientId,
      openSocket: this.parts.openSocket,
      ackDelayMs: this.parts.ackDelayMs ?? 0,
      onReady: () => this.readiness.resolve(),
      onStopped: (error) => this.readiness.reject(error),
      early: this.parts.early,
    });
    this.connection = connection;
    this.started.resolve();
    this.unlisten = await this.store.onLocalWrite(() => {
      this.events.emit('captured');
      // A local write is stored right away (the outbox entry with it), not only with the next ack.
      this.store.storeSoon(this.parts.storeDelayMs ?? 0);
      this.store.upkeep.written();
      const pushDelayMs = this.parts.pushDelayMs ?? 0;
      if (pushDelayMs > 0) setTimeout(() => connection.schedulePush(), pushDelayMs);
      else connection.schedulePush();
    });
    await this.store.durable();
    const early = this.parts.early;
    if (!early) return connection.start();
    // The early session's messages are ready to apply: the app subscribes to their events first (createSyncClient has returned).
    setTimeout(() => (connection.state === 'closed' ? early.discard() : connection.start()), 0);
  }

  /**
   * Holds a subscription's rows too (a client made with `subscriptions`): `ready` resolves once they
   * are in the replica, `unsubscribe()` removes those no other subscription holds. Stored in the
   * replica: a reopened client resumes it, offline too.
   *
   * @example
   *   const project = client.subscribe('project', { projectId });
   *   await project.ready;
   */
  subscribe<N extends SubscriptionInput['name']>(name: N, params: SubscriptionParamsOf<N>): Subscription {
    if (!this.connection) throw new SyncClientError('closed', 'the client has not started; await createSyncClient() first');
    return this.connection.subscriptions.subscribe({ name, params });
  }

  /** Drops a subscription (the same as `unsubscribe()` on what `subscribe` returned). */
  unsubscribe<N extends SubscriptionInput['name']>(name: N, params: SubscriptionParamsOf<N>): Promise<void> {
    if (!this.connection) throw new SyncClientError('closed', 'the client has not started; await createSyncClient() first');
    return this.connection.subscriptions.unsubscribeRef({ name, params });
  }

  /** Resolves when the server has answered every pending local change (errors stay in the outbox) and the replica is stored; rejects once syncing stopped. */
  async flush(): Promise<void> {
    await this.started.promise;
    await this.ready;
    for (;;) {
      const connection = this.connection;
      if (!connection || connection.state === 'closed') throw new SyncClientError('closed', 'the client is closed; nothing more is pushed');
      if (connection.failure) throw connection.failure;
      await connection.pushed();
      if ((await this.store.pendingCount()) === 0) return this.store.durable();
      connection.schedulePush();
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  durable(): Promise<void> {
    return this.store.durable();
  }

  /** Plans a store of the replica `ms` from now (see ReplicaStore.storeSoon). */
  storeSoon(ms: number): void {
    this.store.storeSoon(ms);
  }

  /** The lock on the data directory was lost (its file removed or taken over): stop writing to it. */
  lostLock(error: Error): void {
    this.events.emit('error', new SyncClientError('locked', `the lock on ${this.parts.options.dataDir} was lost; closing so two clients never share it`, { cause: error }));
    void this.close().catch(() => undefined);
  }

  /** Keeps the hello of a replica that has a position (a replica that cannot say one keeps nothing). */
  private async saveHello(): Promise<void> {
    if (!this.parts.saveHello || !this.connection) return;
    const fields = await this.connection.helloFields().catch(() => undefined);
    if (fields?.position) this.parts.saveHello(fields);
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.connection?.close();
      await this.saveHello();
      await this.unlisten?.();
      await this.store.close();
      await this.parts.release?.();
    })();
    return this.closing;
  }
}
