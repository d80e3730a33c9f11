/**
 * The browser's sync loop, in a Web Worker. Every tab starts one; PGlite's worker elects one leader
 * per database (a Web Lock), and only the leader opens the database and syncs. The other tabs' queries
 * go to it; its status and events reach every tab over a BroadcastChannel (see ./browser.ts).
 */
import type { PGlite, QueryOptions } from '@electric-sql/pglite';
import type { LiveQuery, PGliteWithLive } from '@electric-sql/pglite/live';
import { worker } from '@electric-sql/pglite/worker';
import { artifactsStored } from './browser-artifacts';
import { chooseStorage, openReplica } from './browser-storage';
import { type Storage, type StoragePreference, replicaName } from './replica-names';
import { deferred } from './emitter';
import { type LeaderMessage, type TabMessage, channelName, serializeError } from './tab-protocol';
import { SyncClient } from './sync-client';
import type { SocketLike } from './endpoint';
import { type SubscriptionInput, SyncClientError, type SyncEvents } from './types';

const RELAYED: Array<keyof SyncEvents> = ['captured', 'push', 'pull:received', 'pull:applied', 'conflict', 'error', 'bootstrap:start', 'bootstrap:progress', 'bootstrap:complete', 'status'];

/** A query from the leader's own tab (see the `walsync:query` listener). */
export interface DirectQuery {
  type: 'walsync:query';
  id: number;
  sql: string;
  params?: unknown[];
  /** Several statements, no parameters (`db.exec`). */
  exec?: boolean;
  /** Data-only query options (paramTypes, rowMode). */
  options?: QueryOptions;
}

/**
 * A live query from the leader's own tab, run here beside the replica (`walsync:live`, answered with
 * its first rows; new rows follow as `walsync:live-rows`), refreshed (`walsync:live-refresh`) or
 * stopped (`walsync:live-stop`). In the tab, PGlite's live extension would set each one up in a
 * transaction of a dozen statements sent one by one, holding the replica between them while the tab
 * is busy (rendering, say): hundreds of milliseconds a query in which nothing else, a snapshot page
 * among them, could run.
 */
export type DirectLive = { type: 'walsync:live'; id: number; sql: string; params?: unknown[] } | { type: 'walsync:live-refresh' | 'walsync:live-stop'; id: number; live: number };

/** One step of a transaction from the leader's own tab: `begin`, statements, then `commit` or `rollback`. */
export interface DirectStep {
  type: 'walsync:tx';
  /** The reply's id. */
  id: number;
  /** The transaction's id (its `begin` step's id). */
  tx: number;
  step: 'begin' | 'query' | 'exec' | 'commit' | 'rollback';
  sql?: string;
  params?: unknown[];
  options?: QueryOptions;
}

/** A database error as plain data: its message and Postgres' fields (code, detail, …). */
export function queryError(error: unknown): Record<string, unknown> {
  const fields: Record<string, unknown> = { name: (error as Error)?.name ?? 'Error', message: (error as Error)?.message ?? String(error) };
  for (const key of ['code', 'detail', 'hint', 'position', 'schema', 'table', 'column', 'constraint', 'severity', 'where']) {
    const value = (error as Record<string, unknown>)?.[key];
    if (typeof value === 'string' || typeof value === 'number') fields[key] = value;
  }
  return fields;
}

export interface WorkerMeta {
  url: string;
  token: string;
  clientId?: string;
  storage: StoragePreference;
  /** The subscriptions a new replica holds (see SyncClientOptions.subscriptions). */
  subscriptions?: SubscriptionInput[];
}

let client: SyncClient | undefined;
/** Set once this worker's tab closes it: the tabs hear `closed` at once and wait for the next leader. */
let closing = false;
/** Tells every tab this worker's state (set once it leads). */
let announce: () => void = () => undefined;

/** A moment of the worker's start, as a performance mark in its tab (`walsync:worker:<name>`), for profiling a page load. */
const mark = (name: string) => postMessage({ type: 'walsync:mark', name, at: performance.timeOrigin + performance.now() });

/** The open replica, for the leader tab's direct queries (see `walsync:query` below). */
const replica = deferred<PGlite>();
const opened = replica.promise;

/** A second walsync worker on the same database (another bundle, another page) is refused, not raced. */
function holdLock(name: string): Promise<() => Promise<void>> {
  return new Promise((resolve, reject) => {
    navigator.locks
      .request(name, { ifAvailable: true }, (lock) => {
        if (!lock) {
          reject(new SyncClientError('locked', `${name.slice('walsync:'.length)} is already open in another walsync client; two on one database would lose rows`));
          return undefined;
        }
        return new Promise<void>((release) => resolve(async () => release()));
      })
      .catch(reject);
  });
}

void worker({
  async init(options) {
    mark('elected');
    // The replica's name: another bundle may still say idb://<name> for the same replica.
    const dataDir = replicaName(options.dataDir ?? 'walsync') ?? String(options.dataDir);
    const meta = options.meta as WorkerMeta;
    let storage: Storage | undefined;
    const channel = new BroadcastChannel(channelName(dataDir));
    const post = (message: LeaderMessage) => channel.postMessage(message);
    let failure: ReturnType<typeof serializeError> | undefined;
    const leader = crypto.randomUUID();
    const state = (): Extract<LeaderMessage, { type: 'state' | 'leader' }> => ({
      type: 'state',
      leader,
      status: closing ? 'closed' : (client?.status ?? 'connecting'),
      clientId: client?.clientId ?? '',
      ready,
      error: failure,
      storage,
    });
    let ready = false;
    announce = () => post(state());
    channel.onmessage = async ({ data }: MessageEvent<TabMessage>) => {
      if (data.type === 'hello') post(state());
      // A follower tab's statement, one message each way (the same as the leader tab's own, below).
      if (data.type === 'query') void runStatement(data).then((answer) => post({ type: 'result', id: data.id, ...answer }));
      if (data.type === 'durable') {
        await client?.durable().catch(() => undefined);
        post({ type: 'durable', id: data.id });
      }
      if (data.type === 'subscribe' || data.type === 'unsubscribe') {
        // Checked by the client against the definitions, as any app's call is.
        const { name, params } = data.subscription as { name: never; params: never };
        const answer = data.type === 'subscribe' ? 'subscribed' : 'unsubscribed';
        try {
          await opened;
          if (!client) throw new SyncClientError('refused', 'this database could not be opened');
          await (data.type === 'subscribe' ? client.subscribe(name, params).ready : client.unsubscribe(name, params));
          post({ type: answer, id: data.id });
        } catch (error) {
          post({ type: answer, id: data.id, error: serializeError(error) });
        }
      }
      if (data.type === 'flush') {
        try {
          if (!client) throw new SyncClientError('refused', 'this database could not be opened');
          await client.flush();
          post({ type: 'flushed', id: data.id });
        } catch (error) {
          post({ type: 'flushed', id: data.id, error: serializeError(error) });
        }
      }
    };
    // This worker won the election: its own tab learns it first-hand (PGlite's own notice can come late).
    postMessage({ type: 'walsync:leader' });
    try {
      const release = await holdLock(`walsync:${dataDir}`);
      let db: PGlite;
      try {
        storage = chooseStorage(meta.storage);
      } catch (error) {
        await release();
        throw new SyncClientError('refused', (error as Error).message);
      }
      try {
        db = await openReplica(dataDir, storage);
        mark('opened');
      } catch (error) {
        await release();
        throw new SyncClientError('corrupt_database', `the local database ${dataDir} (${storage}) cannot be opened (${(error as Error).message}); it was left untouched`, { cause: error });
      }
      const synced = new SyncClient({
        db,
        options: { url: meta.url, token: meta.token, dataDir, clientId: meta.clientId, subscriptions: meta.subscriptions },
        openSocket: (url) => new WebSocket(url) as unknown as SocketLike,
        release,
        ackDelayMs: 250,
        // The tabs' live queries re-run before an IndexedDB store takes the thread.
        storeDelayMs: storage === 'opfs' ? 0 : 100,
        // The push's own queries would run before the tabs' live queries re-read the write.
        pushDelayMs: 4,
      });
      client = synced;
      // PGlite stores after every statement a tab sends. In IndexedDB that copies whole changed files
      // (a 16 MB WAL segment each time), hundreds of milliseconds every query would wait for: the copy
      // is planned 300 ms later through the client's one store queue (a burst of queries runs first).
      // In OPFS the pages are written as they change and a store only flushes the handles: soon after.
      // The sync loop waits for its own store before it acks, and `client.durable()` lets a tab wait too.
      const storeDelayMs = storage === 'opfs' ? 20 : 300;
      db.syncToFs = async () => synced.storeSoon(storeDelayMs);
      for (const name of RELAYED) {
        client.on(name, (...args: unknown[]) => post({ type: 'event', name, args: name === 'error' ? [serializeError(args[0])] : args }));
      }
      client.on('status', () => post(state()));
      client.ready.then(
        () => {
          ready = true;
          post(state());
        },
        (error) => {
          failure = serializeError(error);
          post(state());
        },
      );
      await client.start();
      mark('started');
      post({ ...state(), type: 'leader' });
      replica.resolve(db);
      return db;
    } catch (error) {
      replica.reject(error as Error);
      const serialized = serializeError(error);
      if (serialized.code === 'locked') {
        // Another walsync client holds this database and keeps serving its tabs: only the opener hears of it.
        postMessage({ type: 'walsync:failed', error: serialized });
      } else {
        failure = serialized;
        post(state());
      }
      throw error;
    }
  },
});

// After PGlite's worker() said "here": that has to be the first message its tab hears.
mark('loaded');

// The leader's own tab closes it cleanly before ending the worker: socket closed, database closed, lock released.
addEventListener('message', (event: MessageEvent<{ type?: string }>) => {
  if (event.data?.type !== 'walsync:close') return;
  // A reloading page's next page asks for the leader at once: it must not take this one, which is going.
  closing = true;
  announce();
  // PGlite's files still being stored wait too (within the tab's 5 s): the next start may be offline.
  const stored = Promise.race([artifactsStored(), new Promise((resolve) => setTimeout(resolve, 4_000))]);
  void Promise.all([client?.close(), stored]).finally(() => postMessage({ type: 'walsync:closed' }));
});

// The leader tab's queries and transactions, one message each way. PGliteWorker's own path takes
// several round trips through a BroadcastChannel per statement (a lock, the protocol, the blob, the
// lock again): 7–9 ms for a SELECT 1 in Chromium against well under 1 ms here. PGlite itself keeps
// them in order and out of any other tab's open transaction.
const transactions = new Map<number, (step: DirectStep) => void>();

/** A tab's statement (`exec`: several, no parameters) on the open replica, answered as a reply's `result` or `error`. */
function runStatement(statement: { sql: string; params?: unknown[]; options?: QueryOptions; exec?: boolean }): Promise<{ result: unknown } | { error: Record<string, unknown> }> {
  return opened
    .then((db): Promise<unknown> => (statement.exec ? db.exec(statement.sql) : db.query(statement.sql, statement.params, statement.options)))
    .then(
      (result) => ({ result }),
      (error: unknown) => ({ error: queryError(error) }),
    );
}
const reply = (id: number, outcome: { result?: unknown; error?: unknown }) =>
  postMessage({ type: 'walsync:result', id, ...('error' in outcome ? { error: queryError(outcome.error) } : { result: outcome.result }) });

/** The leader tab's live queries, by the id of their `walsync:live` message. */
const lives = new Map<number, Promise<LiveQuery<unknown> | undefined>>();

addEventListener('message', (event: MessageEvent<DirectLive>) => {
  const message = event.data;
  if (message?.type === 'walsync:live') {
    const started = opened.then((db) => (db as unknown as PGliteWithLive).live.query(message.sql, message.params, (results) => postMessage({ type: 'walsync:live-rows', id: message.id, results })));
    lives.set(message.id, started.catch(() => undefined));
    void started.then(
      (query) => reply(message.id, { result: query.initialResults }),
      (error: unknown) => {
        lives.delete(message.id);
        reply(message.id, { error });
      },
    );
  }
  if (message?.type === 'walsync:live-refresh' || message?.type === 'walsync:live-stop') {
    const query = lives.get(message.live);
    if (message.type === 'walsync:live-stop') lives.delete(message.live);
    void (query ?? Promise.resolve(undefined))
      .then((live) => (message.type === 'walsync:live-stop' ? live?.unsubscribe() : live?.refresh()))
      .then(
        () => reply(message.id, { result: null }),
        (error: unknown) => reply(message.id, { error }),
      );
  }
});

addEventListener('message', (event: MessageEvent<DirectQuery | DirectStep>) => {
  const message = event.data;
  if (message?.type === 'walsync:query') void runStatement(message).then((answer) => postMessage({ type: 'walsync:result', id: message.id, ...answer }));
  if (message?.type !== 'walsync:tx') return;
  if (message.step !== 'begin') {
    transactions.get(message.tx)?.(message);
    return;
  }
  void (async () => {
    let ending: DirectStep | undefined;
    try {
      const db = await opened;
      await db.transaction(async (tx) => {
        const steps: DirectStep[] = [];
        let wake: (() => void) | undefined;
        transactions.set(message.tx, (step) => {
          steps.push(step);
          wake?.();
        });
        reply(message.id, { result: null });
        for (;;) {
          if (steps.length === 0) await new Promise<void>((resolve) => (wake = resolve));
          const step = steps.shift()!;
          if (step.step === 'commit') return void (ending = step);
          if (step.step === 'rollback') {
            ending = step;
            return tx.rollback();
          }
          await (step.step === 'exec' ? tx.exec(step.sql!) : tx.query(step.sql!, step.params, step.options)).then(
            (result) => reply(step.id, { result }),
            (error: unknown) => reply(step.id, { error }),
          );
        }
      });
      if (ending) reply(ending.id, { result: null });
    } catch (error) {
      reply(ending?.id ?? message.id, { error });
    } finally {
      transactions.delete(message.tx);
    }
  })();
});