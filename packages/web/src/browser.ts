/**
 * @walsync/web in the browser. Each tab gets a `db` (a PGliteWorker: plain SQL and live queries)
 * and the client's status and events; the sync loop runs in the leader tab's Web Worker (./worker.ts).
 */
import type { QueryOptions, Transaction } from '@electric-sql/pglite';
import { type LiveQuery, type LiveQueryResults, live } from '@electric-sql/pglite/live';
import { PGliteWorker } from '@electric-sql/pglite/worker';
import { type LiveQueryOptions, TabLiveQueries } from './tab-live-queries';
import { type LeaderMessage, type SerializedError, type TabMessage, channelName, reviveError } from './tab-protocol';
import { type BootMessage, bootChannelName } from './boot-channel';
import { SyncEmitter, deferred } from './emitter';
import { STORAGE_PREFERENCES, type Storage, type StoragePreference, replicaName } from './replica-names';
import { syncEndpoint } from './endpoint';
import type { WorkerMeta } from './worker';
import { OwnWorker, type PendingReply, type WorkerReply, answerReply, crossesAsData } from './own-worker';
import { type Subscription, type SubscriptionInput, type SubscriptionParamsOf, SyncClientError, type SyncClientOptions, type SyncEvents, type SyncHandle, type SyncStatus } from './types';

export type { Storage, StoragePreference } from './replica-names';
export { readRows, type ReadRowsOptions } from './rows-read';
export {
  SyncClientError,
  type Subscription,
  type SubscriptionInput,
  type SubscriptionParamsOf,
  type SyncClientErrorCode,
  type SyncClientOptions,
  type SyncEvents,
  type SyncHandle,
  type SyncStatus,
} from './types';

export interface BrowserSyncClientOptions extends SyncClientOptions {
  /**
   * The replica's name (letters, digits, `_ . -`): one replica per name and browser profile, shared
   * by every tab. `idb://<name>` (from before OPFS) names the same replica.
   */
  dataDir: string;
  /**
   * Where the replica lives: `auto` (default) OPFS where the browser has sync access handles in
   * workers, IndexedDB where it does not (some Safari); `indexeddb` or `opfs` to force one. An
   * IndexedDB replica of the same name is moved to OPFS once, rows, position and outbox with it.
   */
  storage?: StoragePreference;
  /** Where the worker bundle is served; by default `worker.js` beside this module. */
  workerUrl?: string | URL;
}

export type BrowserDb = PGliteWorker & { live: import('@electric-sql/pglite/live').LiveNamespace };

/**
 * Opens (or joins) the replica named by `dataDir`. Every tab may call it; one tab leads and syncs.
 *
 * @example
 *   const client = await createSyncClient({ url: location.origin, token, dataDir: 'idb://walsync-demo' });
 *   await client.ready;
 *   client.db.live.query('SELECT * FROM task ORDER BY position', [], (result) => render(result.rows));
 */
export async function createSyncClient(options: BrowserSyncClientOptions): Promise<BrowserSyncClient> {
  const name = replicaName(options.dataDir);
  if (!name) throw new TypeError(`dataDir must be a replica name (letters, digits, "_", ".", "-"; optionally idb://<name>) in the browser, got ${JSON.stringify(options.dataDir)}`);
  const storage = options.storage ?? 'auto';
  if (!STORAGE_PREFERENCES.includes(storage)) throw new TypeError(`storage must be one of ${STORAGE_PREFERENCES.join(', ')}, got ${JSON.stringify(options.storage)}`);
  // A URL that cannot be a walsync server is refused before a worker starts.
  syncEndpoint(options.url);
  // The bootstrap (./worker-boot.ts) learns the replica's name from its URL, to start PGlite's files if it will lead.
  // `boot` names the channel it tells this tab on while it cannot load its code (the server away).
  const boot = crypto.randomUUID();
  const worker = new Worker(options.workerUrl ?? new URL(`./worker.js?replica=${encodeURIComponent(name)}&boot=${boot}`, import.meta.url), { type: 'module' });
  const client = new BrowserSyncClient(worker, name, boot);
  try {
    // The tab's handle comes back at once, before the worker's script has loaded (a reload's longest
    // wait): a page paints its last view meanwhile, and statements wait until a leader is known.
    const db = new PGliteWorker(worker, {
      dataDir: name,
      id: channelName(name),
      meta: { url: options.url, token: options.token, clientId: options.clientId, storage, subscriptions: options.subscriptions } satisfies WorkerMeta,
      extensions: { live },
    }) as unknown as BrowserDb;
    // PGliteWorker sets up its extensions (`db.live`) in its first turns, before it waits for the worker.
    await new Promise((resolve) => setTimeout(resolve, 0));
    if (!db.live) throw new Error("PGlite's live extension was not set up on the tab's handle");
    client.attach(db);
    // A tab that is not the leader asks the leader's client for its subscriptions (the leader was given them at its start too).
    for (const { name, params } of options.subscriptions ?? []) void client.subscribe(name, params as never).ready.catch(() => undefined);
    return client;
  } catch (error) {
    client.dispose();
    worker.terminate();
    throw error;
  }
}

/** Settles the request `id` of `pending` with the leader's answer: done, or the error it sent. */
function settleRequest(pending: Map<string, { resolve: () => void; reject: (error: Error) => void }>, id: string, error: SerializedError | undefined): void {
  const waiting = pending.get(id);
  pending.delete(id);
  if (error) waiting?.reject(reviveError(error));
  else waiting?.resolve();
}

/** A tab's handle on the replica; the leader tab's worker runs the SyncClient, every tab sees its status and events. */
export class BrowserSyncClient implements SyncHandle<BrowserDb> {
  db!: BrowserDb;
  status: SyncStatus = 'connecting';
  clientId = '';
  /** Where the replica lives (`opfs` or `indexeddb`), known once the leader opened it. */
  storage: Storage | undefined;
  readonly ready: Promise<void>;
  /** Rejects when the leader cannot open the database (locked elsewhere, corrupt). */
  readonly failed: Promise<never>;
  private readonly readiness = deferred();
  private readonly failure = deferred<never>();
  private readonly channel: BroadcastChannel;
  private readonly events = new SyncEmitter();
  private readonly flushes = new Map<string, { resolve: () => void; reject: (error: Error) => void }>();
  private readonly durables = new Map<string, () => void>();
  /** Subscribe and unsubscribe requests out to the leader, by id (asked again of a new leader). */
  private readonly subscriptionRequests = new Map<string, { message: Extract<TabMessage, { type: 'subscribe' | 'unsubscribe' }>; resolve: () => void; reject: (error: Error) => void }>();
  private readonly hello: ReturnType<typeof setInterval>;
  private heardLeader = false;

  constructor(
    private readonly worker: Worker,
    /** The replica's name. */
    readonly dataDir: string,
    /** The worker's boot channel (see bootChannelName). */
    boot?: string,
  ) {
    this.ready = this.readiness.promise;
    this.failed = this.failure.promise;
    this.own = new OwnWorker(worker, (channel, listener, tx) => this.db.listen(channel, listener, tx));
    this.worker.addEventListener('message', (event: MessageEvent<WorkerReply & { error?: SerializedError; name?: string; at?: number }>) => {
      this.workerStarted = true;
      this.boot?.close();
      if (event.data?.type === 'walsync:mark') performance.mark(`walsync:worker:${event.data.name}`, { startTime: event.data.at! - performance.timeOrigin });
      if (event.data?.type === 'walsync:failed') this.fail(reviveError(event.data.error!));
      if (event.data?.type === 'walsync:leader') {
        this.leading = true;
        this.followLeader('own');
        this.knowRoute();
      }
      this.own.receive(event.data);
    });
    // An error before the worker said anything: its script did not load (or threw as it loaded).
    this.worker.addEventListener('error', (event) => {
      if (this.workerStarted) return;
      event.preventDefault();
      this.fail(new Error(`the walsync worker could not start${(event as ErrorEvent).message ? ` (${(event as ErrorEvent).message})` : ''}: is worker.js served beside the client, or workerUrl right?`));
    });
    if (boot) {
      this.boot = new BroadcastChannel(bootChannelName(boot));
      // Only before the worker started: a failure after it is still reported (the error listener above).
      this.boot.onmessage = ({ data }: MessageEvent<BootMessage>) => data?.type === 'unreachable' && !this.workerStarted && this.setStatus('offline');
    }
    this.channel = new BroadcastChannel(channelName(dataDir));
    this.channel.onmessage = ({ data }: MessageEvent<LeaderMessage>) => this.receive(data);
    // Asks for the leader's state until it answers (the leader may still be starting).
    this.hello = setInterval(() => !this.heardLeader && this.post({ type: 'hello' }), 100);
    this.post({ type: 'hello' });
  }

  private leading = false;
  /** This tab's own worker, asked directly while this tab leads (see attach). */
  private readonly own: OwnWorker;
  /** The leader statements go to: `own` (this tab's worker), another worker's id, or none known yet. */
  private leader: string | undefined;
  /** This tab's live queries, set up again when another worker takes over (see attach). */
  private liveQueries: TabLiveQueries | undefined;
  /** Whether the worker has sent anything yet (its script loaded and ran). */
  private workerStarted = false;
  /** The worker's bootstrap speaks here until it started (see bootChannelName). */
  private readonly boot: BroadcastChannel | undefined;
  /**
   * Settled once a statement knows where to go: to this tab's own worker (it leads) or to the leader's.
   * A new one while a leader that closed has no successor yet (a reload's old page, say).
   */
  private routes = deferred();
  private routeKnown = false;

  private knowRoute(): void {
    this.routeKnown = true;
    this.routes.resolve();
  }

  /** The database cannot be reached from this tab: `failed`, `ready` and every waiting statement reject. */
  private fail(error: Error): void {
    this.failure.reject(error);
    this.readiness.reject(error);
    this.routes.reject(error);
    this.setStatus('error');
  }

  private setStatus(status: SyncStatus): void {
    if (status === this.status) return;
    this.status = status;
    this.events.emit('status', status);
  }

  /** Whether this tab's worker is the one that syncs (told by the worker itself when it is elected). */
  get isLeader(): boolean {
    return this.leading;
  }

  attach(db: BrowserDb): void {
    this.db = db;
    // The leader tab asks its own worker directly, one message each way (see worker.ts); a follower
    // tab asks the leader's worker on the tabs' channel, one message each way, once a leader answered.
    // Transactions of followers, and queries with options that are not data (parsers: functions do
    // not cross), go through PGliteWorker, which takes several round trips per statement.
    // Until then (the worker still loading), statements wait in order: each goes on once the route is known.
    const viaPGliteWorker = { query: db.query.bind(db), exec: db.exec.bind(db), transaction: db.transaction.bind(db) };
    const routed = <T>(run: () => Promise<T>): Promise<T> => this.routes.promise.then(run);
    db.query = ((sql: string, params?: unknown[], options?: QueryOptions) =>
      routed(() => {
        if (!crossesAsData(options)) return viaPGliteWorker.query(sql, params as never, options as never);
        if (this.leading) return this.own.query({ sql, params, options });
        return this.ask({ sql, params, options: options as Record<string, unknown> | undefined });
      })) as BrowserDb['query'];
    db.exec = ((sql: string, options?: QueryOptions) =>
      routed(() => {
        if (options !== undefined) return viaPGliteWorker.exec(sql, options as never);
        if (this.leading) return this.own.query({ sql, exec: true });
        return this.ask({ sql, exec: true });
      })) as BrowserDb['exec'];
    db.transaction = (<T>(callback: (tx: Transaction) => Promise<T>) =>
      routed(() => (this.leading ? this.own.transaction(callback) : viaPGliteWorker.transaction(callback)))) as BrowserDb['transaction'];
    // The leader tab's live queries run in its worker, beside the replica (see DirectLive in ./worker.ts).
    // Windowed ones (offset and limit) and those of follower tabs keep PGlite's own path.
    const liveViaPGliteWorker = db.live.query.bind(db.live) as (options: LiveQueryOptions<unknown>) => Promise<LiveQuery<unknown>>;
    const lives = new TabLiveQueries((options) =>
      routed(() => {
        if (!this.leading || options.offset !== undefined || options.limit !== undefined) return liveViaPGliteWorker(options);
        return this.own.live(options.query, options.params ?? undefined, options.callback);
      }),
    );
    this.liveQueries = lives;
    db.live.query = ((query: string | LiveQueryOptions<unknown>, params?: unknown[] | null, callback?: (results: LiveQueryResults<unknown>) => void) =>
      lives.query(typeof query === 'string' ? { query, params, callback } : query)) as BrowserDb['live']['query'];
  }

  /** This tab's statements out to the leader's worker (`ask`), by id; ids are this tab's own. */
  private readonly asked = new Map<string, PendingReply>();
  private asks = 0;
  private readonly tabId = Math.random().toString(36).slice(2);

  private ask(message: { sql: string; params?: unknown[]; options?: Record<string, unknown>; exec?: boolean }): Promise<never> {
    const id = `${this.tabId}:${++this.asks}`;
    return new Promise((resolve, reject) => {
      this.asked.set(id, { resolve, reject });
      this.post({ type: 'query', id, ...message });
    });
  }

  on<K extends keyof SyncEvents>(event: K, listener: (...args: SyncEvents[K]) => void): () => void {
    return this.events.on(event, listener);
  }

  private post(message: TabMessage): void {
    this.channel.postMessage(message);
  }

  private receive(message: LeaderMessage): void {
    if (message.type === 'event') {
      const args = message.name === 'error' ? [reviveError(message.args[0] as SerializedError)] : message.args;
      // The status is the leader's state's (below): its event is not replayed from here.
      if (message.name !== 'status') this.events.emit(message.name as keyof SyncEvents, ...(args as never));
      return;
    }
    if (message.type === 'durable') {
      this.durables.get(message.id)?.();
      this.durables.delete(message.id);
      return;
    }
    if (message.type === 'result') return answerReply(this.asked, message.id, message);
    if (message.type === 'subscribed' || message.type === 'unsubscribed') return settleRequest(this.subscriptionRequests, message.id, message.error);
    if (message.type === 'flushed') return settleRequest(this.flushes, message.id, message.error);
    if (message.status === 'closed') {
      // A leader is going (its tab closed or reloads), and it is never this tab's own worker: this tab
      // closes its channel before its worker closes. A follower's statements wait for the next leader,
      // and the tab, still open, says so rather than closed. A tab that leads already (its worker took
      // over before the old leader's last word arrived on the channel) has nothing to take from it.
      if (!this.leading && message.leader === this.leader) this.leaderLeft();
      return;
    }
    if (!this.leading) this.followLeader(message.leader);
    this.heardLeader = true;
    this.knowRoute();
    this.clientId = message.clientId || this.clientId;
    this.storage = message.storage ?? this.storage;
    if (message.error) {
      const error = reviveError(message.error);
      this.failure.reject(error);
      this.readiness.reject(error);
    }
    if (message.ready) this.readiness.resolve();
    // A new leader took over: what the old one had not answered is asked again.
    if (message.type === 'leader') {
      for (const id of this.flushes.keys()) this.post({ type: 'flush', id });
      for (const id of this.durables.keys()) this.post({ type: 'durable', id });
      for (const { message: request } of this.subscriptionRequests.values()) this.post(request);
      // A statement is not asked again: the old leader may have run it before it went.
      for (const pending of this.asked.values()) pending.reject(new SyncClientError('leader_changed', 'the leader tab closed before it answered; the statement may or may not have run'));
      this.asked.clear();
    }
    this.setStatus(message.status);
  }

  /** Statements go to this leader from now on; live queries set up through the one before are set up again through it. */
  private followLeader(leader: string): void {
    if (leader === this.leader) return;
    if (this.leader !== undefined) this.liveQueries?.leaderChanged();
    this.leader = leader;
  }

  /** The leader this follower asked closed: its statements wait for the next, which is asked for. */
  private leaderLeft(): void {
    this.heardLeader = false;
    // Statements already waiting for a route wait on; once one was known, later ones wait for the next.
    if (this.routeKnown) this.routes = deferred();
    this.routeKnown = false;
    this.setStatus('connecting');
  }

  /**
   * Holds a subscription's rows too (a replica made with `subscriptions`); the leader tab's client
   * keeps it, for every tab. See SyncClient.subscribe.
   *
   * @example
   *   const project = client.subscribe('project', { projectId });
   *   await project.ready;
   */
  subscribe<N extends SubscriptionInput['name']>(name: N, params: SubscriptionParamsOf<N>): Subscription {
    const ready = this.requestSubscription('subscribe', { name, params });
    ready.catch(() => undefined);
    return { name, params, ready, unsubscribe: () => this.unsubscribe(name, params as never) };
  }

  /** Drops a subscription, for every tab: resolves once the rows only it held are gone. */
  unsubscribe<N extends SubscriptionInput['name']>(name: N, params: SubscriptionParamsOf<N>): Promise<void> {
    return this.requestSubscription('unsubscribe', { name, params });
  }

  private requestSubscription(type: 'subscribe' | 'unsubscribe', subscription: { name: string; params: Record<string, string> }): Promise<void> {
    const id = crypto.randomUUID();
    const message = { type, id, subscription };
    return new Promise((resolve, reject) => {
      this.subscriptionRequests.set(id, { message, resolve, reject });
      this.post(message);
    });
  }

  /** Resolves when the server has answered every pending local change, whichever tab made it. */
  flush(): Promise<void> {
    const id = crypto.randomUUID();
    return new Promise((resolve, reject) => {
      this.flushes.set(id, { resolve, reject });
      this.post({ type: 'flush', id });
    });
  }

  /**
   * Resolves when every write committed so far, from any tab, is stored in IndexedDB. The replica
   * stores writes in the background within moments; await this where a write must survive a crash
   * right after it (the sync loop itself never acks what is not stored).
   */
  durable(): Promise<void> {
    const id = crypto.randomUUID();
    return new Promise((resolve) => {
      this.durables.set(id, resolve);
      this.post({ type: 'durable', id });
    });
  }

  dispose(): void {
    clearInterval(this.hello);
    this.boot?.close();
    this.channel.close();
  }

  /** Closes this tab's handle; the leader first stops syncing and closes the database, then another tab takes over. */
  async close(): Promise<void> {
    this.dispose();
    if (this.leading) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 5_000);
        this.worker.addEventListener('message', (event: MessageEvent<{ type?: string }>) => {
          if (event.data?.type === 'walsync:closed') {
            clearTimeout(timer);
            resolve();
          }
        });
        this.worker.postMessage({ type: 'walsync:close' });
      });
    }
    await this.db?.close();
  }
}
