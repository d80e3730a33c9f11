import type { SubscriptionRef } from '@walsync/db/browser';
import { type SyncEmitter, deferred } from './emitter';
import type { ReplicaStore } from './replica-store';
import { type Subscription, SyncClientError } from './types';

type Deferred = ReturnType<typeof deferred<void>>;

/**
 * A client's subscriptions as the app sees them (`client.subscribe`): each one's `ready` and
 * `unsubscribe()`, kept in step with what the replica stores and what the server answers. The
 * replica is the truth (a reopened client resumes what it stored); this only settles promises.
 *
 * A subscription is stored `pending` until the snapshot that brings its rows has been applied
 * (then `ready`), and `leaving` from `unsubscribe()` until the server's `unsubscribed` (then its
 * rows go): rows still in flight when the app unsubscribed can never come back after they left.
 */
export class ClientSubscriptions {
  private readonly ready = new Map<string, Deferred>();
  private readonly leaving = new Map<string, Deferred>();
  /** Subscriptions asked of the server on this connection (a new connection asks again). */
  private requested = new Set<string>();
  /** What this connection's hello named: the server holds them until it hears an unsubscribe. */
  private named = new Set<string>();
  /** Unsubscribes sent on this connection. */
  private leavingSent = new Set<string>();

  constructor(
    private readonly store: ReplicaStore,
    private readonly events: SyncEmitter,
    /** Sends a message when a session is open past its hello; false when not (offline). */
    private readonly send: (message: unknown) => boolean,
  ) {}

  /** `client.subscribe(name, params)`. */
  subscribe(ref: SubscriptionRef): Subscription {
    const checked = this.store.subscriptions.rows.check(ref);
    const refuse = (message: string): Subscription => {
      const ready = Promise.reject(new SyncClientError('invalid_subscription', message));
      ready.catch(() => undefined);
      return { name: ref.name, params: ref.params, ready, unsubscribe: async () => undefined };
    };
    if ('problem' in checked) return refuse(checked.problem);
    if (!this.store.subscriptions.partial) return refuse('this client holds its whole scope (it was made without `subscriptions`), so it already has every row a subscription selects');
    const { key } = checked;
    const ready = this.readyOf(key);
    void this.store.subscriptions.add(key, checked.ref).then(
      (state) => (state === 'ready' ? ready.resolve() : this.request(key, checked.ref)),
      (error: Error) => ready.reject(error),
    );
    return { name: checked.ref.name, params: checked.ref.params, ready: ready.promise, unsubscribe: () => this.unsubscribe(key, checked.ref) };
  }

  private readyOf(key: string): Deferred {
    let waiting = this.ready.get(key);
    if (!waiting) {
      waiting = deferred<void>();
      waiting.promise.catch(() => undefined);
      this.ready.set(key, waiting);
    }
    return waiting;
  }

  private request(key: string, ref: SubscriptionRef): void {
    if (this.requested.has(key)) return;
    if (this.send({ type: 'subscribe', subscription: ref })) this.requested.add(key);
  }

  /** `client.unsubscribe(name, params)`: drops a subscription the replica holds (nothing when it holds none such). */
  async unsubscribeRef(ref: SubscriptionRef): Promise<void> {
    const checked = this.store.subscriptions.rows.check(ref);
    if ('problem' in checked) throw new SyncClientError('invalid_subscription', checked.problem);
    return this.unsubscribe(checked.key, checked.ref);
  }

  private async unsubscribe(key: string, ref: SubscriptionRef): Promise<void> {
    if (!(await this.store.subscriptions.markLeaving(key))) return;
    this.requested.delete(key);
    const done = this.leaving.get(key) ?? deferred<void>();
    this.leaving.set(key, done);
    // Online, the rows go with the server's answer (nothing of the subscription follows it); offline, at
    // once. Between a hello that named it and the session going live, the server holds it and streams
    // its rows: the unsubscribe waits for the session (live()), and the rows go with its answer.
    if (this.send({ type: 'unsubscribe', subscription: ref })) this.leavingSent.add(key);
    else if (!this.named.has(key)) await this.removed(key);
    return done.promise;
  }

  /** The connection is gone: what its hello named and its requests mean nothing to the next one. */
  disconnected(): void {
    this.named = new Set();
    this.requested = new Set();
    this.leavingSent = new Set();
    // Unsubscribes waiting for that session: offline now, their rows go at once (the next hello does not name them).
    void this.store.subscriptions.list().then(async (stored) => {
      for (const each of stored.filter((subscription) => subscription.state === 'leaving' && this.leaving.has(subscription.key))) await this.removed(each.key);
    }).catch((error: Error) => this.events.emit('error', error));
  }

  /**
   * A new session is about to say hello: subscriptions left while no answer could come are gone
   * now (the hello does not name them). Returns what the hello names: for a replica that has a
   * position, the subscriptions whose rows it holds; for a new one, every one to hydrate.
   */
  async beforeHello(hasPosition: boolean): Promise<SubscriptionRef[] | undefined> {
    if (!this.store.subscriptions.partial) return undefined;
    this.requested = new Set();
    this.leavingSent = new Set();
    const stored = await this.store.subscriptions.list();
    for (const each of stored.filter((subscription) => subscription.state === 'leaving')) await this.removed(each.key);
    const named = stored.filter((each) => (hasPosition ? each.state === 'ready' : each.state !== 'leaving'));
    this.named = new Set(named.map((each) => each.key));
    // A pending subscription's rows from a snapshot cut short (the connection or the process went
    // away mid-way) are as old as that snapshot, and the new session will not hold the subscription
    // until it is asked for again — the stream may pass their changes, a move out of it among them,
    // before that. So they go now; its new snapshot brings them as they are then.
    if (hasPosition) {
      const pending = stored.filter((each) => each.state === 'pending').map((each) => each.ref);
      if (pending.length > 0) await this.store.subscriptions.dropUnhydrated(pending, named.map((each) => each.ref));
    }
    return named.map((each) => each.ref);
  }

  /** The session is live: subscriptions still pending are asked for. */
  async live(): Promise<void> {
    if (!this.store.subscriptions.partial) return;
    for (const each of await this.store.subscriptions.list()) {
      if (each.state === 'pending') this.request(each.key, each.ref);
      if (each.state === 'leaving' && this.named.has(each.key) && !this.leavingSent.has(each.key)) {
        if (this.send({ type: 'unsubscribe', subscription: each.ref })) this.leavingSent.add(each.key);
      }
      if (each.state === 'ready') this.ready.get(each.key)?.resolve();
    }
  }

  /** A snapshot brought these subscriptions' rows (the store marked them ready). */
  hydrated(refs: SubscriptionRef[]): void {
    for (const ref of refs) {
      const checked = this.store.subscriptions.rows.check(ref);
      if ('key' in checked) this.ready.get(checked.key)?.resolve();
    }
  }

  /** The server's answer to an unsubscribe: the rows go now, unless the app subscribed again meanwhile. */
  async unsubscribed(ref: SubscriptionRef): Promise<void> {
    const checked = this.store.subscriptions.rows.check(ref);
    if ('key' in checked) await this.removed(checked.key);
  }

  /** The server refused a subscription: nothing of it is held; `ready` rejects and an `error` says why. */
  async refused(ref: SubscriptionRef, code: string, message: string): Promise<void> {
    const checked = this.store.subscriptions.rows.check(ref);
    const error = new SyncClientError('subscription_refused', `the server refused subscription ${ref.name} ${JSON.stringify(ref.params)} (${code}): ${message}`);
    if ('key' in checked) {
      await this.store.subscriptions.remove(checked.key);
      this.requested.delete(checked.key);
      this.ready.get(checked.key)?.reject(error);
      this.ready.delete(checked.key);
    }
    this.events.emit('error', error);
  }

  private async removed(key: string): Promise<void> {
    if (await this.store.subscriptions.remove(key, { ifLeaving: true })) this.ready.delete(key);
    this.leaving.get(key)?.resolve();
    this.leaving.delete(key);
  }
}
