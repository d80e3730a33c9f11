/**
 * The sync connection: one client's session with the server, as an explicit state machine. Every
 * state and every transition is here; `status` (what an app shows) is derived from the state in
 * one table (`statusOf`, connection-status.ts). The connection speaks the protocol (docs/protocol.md); everything it
 * reads or writes in the replica goes through the ReplicaStore.
 *
 *                 start()
 *                    │
 *                    ▼
 *     ┌──────► connecting ──socket open──► handshaking ──welcome, stored position──► live ◄─────┐
 *     │            │                          │                                     │  ▲       │
 *     │     socket failed to open             │ welcome, no position                │  │       │
 *     │     (probe: not walsync) ──► failed   ▼                                     │  │ snapshot_end
 *     │            │                      hydrating ──snapshot_end──────────────────┘  │ up_to_date
 *     │            ▼                          ▲          resnapshot / a workspace added │
 *     └─timer── backoff ◄── socket lost, or silent for SILENT_MS (any connected state)  │
 *                                             └─────────────────────────────────────────┘
 *     handshaking/hydrating/live ── close 4401/4403/4409 ──► refused   (not retried)
 *     handshaking/hydrating/live ── a migration or a batch fails to apply ──► failed ──timer──► connecting
 *     connecting ── the URL is not a walsync server ──► failed           (not retried)
 *     any state ── close() ──► closed
 *
 * A message is applied in one local transaction with the position it brings, then acknowledged
 * once stored. A message that fails to apply stops there: the connection and every message queued
 * after it are dropped (none of them is applied, the position stays), status is `error` and
 * `flush()` rejects with the cause until a later connection, on the backoff, gets the replica live
 * again from its stored position (a fixed server, a new migration).
 */
import { retryDelay } from '@walsync/db/browser';
import { ClientSubscriptions } from './client-subscriptions';
import { type ConnectionState, statusOf } from './connection-status';
import { type EarlyHello, type HelloFields, helloMessage } from './early-hello';
import type { SyncEmitter } from './emitter';
import type { SocketFactory, SocketLike, SyncEndpoint } from './endpoint';
import { Heartbeat } from './heartbeat';
import { OutboxPush } from './outbox-push';
import type { ReplicaStore } from './replica-store';
import { type ClientServerMessage, parseServerMessage, probeEndpoint } from './server-answers';
import { SnapshotArrival } from './snapshot-arrival';
import { StoredAcks } from './stored-acks';
import { SyncClientError, type SyncStatus } from './types';

const OPEN = 1;

/** Close codes after which retrying with the same token, client id or schema cannot succeed. */
const REFUSALS = new Set([4401, 4403, 4409]);

export interface SyncConnectionOptions {
  endpoint: SyncEndpoint;
  token: string;
  clientId: string;
  openSocket: SocketFactory;
  /** How long acks wait to be coalesced with later ones (see StoredAcks): 0 in Node, where storing is free. */
  ackDelayMs: number;
  /** The first hydration is done, or the replica had done it before. */
  onReady(): void;
  /** The connection stopped for good (refused, failed) before or after ready. */
  onStopped(error: SyncClientError): void;
  /** A session opened while the replica started, taken over if its hello is the replica's (see EarlyHello). */
  early?: EarlyHello;
}

export class SyncConnection {
  state: ConnectionState = 'connecting';
  /** Why the connection stopped (refused, a wrong URL) or why its last attempt failed to apply, for `flush()`; cleared once live again. */
  failure: SyncClientError | undefined;
  /** A connection was lost or failed before: connecting again shows as offline. */
  private reconnecting = false;
  /** The last failure reported as an `error` event: the same one on the next attempt is not repeated. */
  private reported: string | undefined;
  /** Refused, or a wrong URL: retrying cannot help. */
  private final = false;
  private socket: SocketLike | undefined;
  private attempt = 0;
  private queue: Promise<void> = Promise.resolve();
  private readonly push: OutboxPush;
  /** The app's subscriptions (a replica that holds subscriptions only). */
  readonly subscriptions: ClientSubscriptions;
  private readonly snapshot: SnapshotArrival;
  /** Why the server refused this client, from its `error` message before the close. */
  private refusal: string | undefined;
  /** Whether the server is still there: asked when quiet, given up on when silent. */
  private readonly heartbeat = new Heartbeat({
    quiet: () => this.socket?.readyState === OPEN && this.send({ type: 'ping' }),
    silent: () => this.socket && this.lose(this.socket),
  });
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly acks: StoredAcks;
  private readonly onNetworkLost = () => this.socket && this.lose(this.socket);
  private readonly onNetworkBack = () => this.state === 'backoff' && this.connectNow();
  /** Resumed from the stored position and not yet told `up_to_date`: the replica is usable, not current. */
  private catchingUp = false;

  constructor(
    private readonly store: ReplicaStore,
    private readonly events: SyncEmitter,
    private readonly options: SyncConnectionOptions,
  ) {
    this.acks = new StoredAcks(store, events, options.ackDelayMs);
    this.snapshot = new SnapshotArrival(store, events, (position) => this.ackWhenStored(position));
    this.push = new OutboxPush(store, events, {
      isLive: () => this.state === 'live',
      send: (message) => this.send(message),
      changed: () => this.announce(),
    });
    // A session past its hello takes messages in order; before that (or offline) nothing is sent.
    this.subscriptions = new ClientSubscriptions(store, events, (message) => {
      if (this.socket?.readyState !== OPEN || (this.state !== 'live' && this.state !== 'hydrating')) return false;
      this.send(message);
      return true;
    });
  }

  get status(): SyncStatus {
    return statusOf(this.state, { reconnecting: this.reconnecting, pushing: this.push.sending, failing: this.failure !== undefined, catchingUp: this.catchingUp });
  }

  private lastStatus: SyncStatus | undefined;

  private enter(state: ConnectionState): void {
    this.state = state;
    this.announce();
  }

  /** Emits `status` when the derived status changed. */
  private announce(): void {
    const status = this.status;
    if (status === this.lastStatus) return;
    this.lastStatus = status;
    this.events.emit('status', status);
  }

  start(): void {
    this.lastStatus = this.status;
    // In a browser (the worker too) the network's own events are faster than any heartbeat.
    globalThis.addEventListener?.('offline', this.onNetworkLost);
    globalThis.addEventListener?.('online', this.onNetworkBack);
    this.heartbeat.start();
    const early = this.options.early;
    if (early) void this.adopt(early).catch((error: Error) => this.events.emit('error', error));
    else this.connectNow();
  }

  /**
   * Takes over the session opened while the replica started when the replica says the same hello
   * (the same position, workspaces, subscriptions, schema and id); what it brought meanwhile is
   * handled now, in order. Any other hello: that socket is closed unread and a new session starts.
   */
  private async adopt(early: EarlyHello): Promise<void> {
    const fields = await this.helloFields();
    if (this.stopped || !early.matches(fields)) {
      early.discard();
      return this.connectNow();
    }
    this.attach(early.socket, early.opened);
    for (const data of early.messages.splice(0)) this.receive(early.socket, data);
  }

  private connectNow(): void {
    clearTimeout(this.retryTimer);
    if (this.stopped) return;
    this.attach(this.options.openSocket(this.options.endpoint.socketUrl), false);
  }

  /** Makes `socket` the session's; `helloSent`: it is open and has said hello already (adopted). */
  private attach(socket: SocketLike, helloSent: boolean): void {
    this.enter(helloSent ? 'handshaking' : 'connecting');
    this.socket = socket;
    this.heartbeat.heard();
    let opened = helloSent;
    socket.onopen = () => {
      opened = true;
      this.heartbeat.heard();
      this.enter('handshaking');
      void this.hello(socket).catch((error: Error) => this.events.emit('error', error));
    };
    socket.onmessage = ({ data }) => this.receive(socket, data);
    socket.onerror = () => undefined;
    socket.onclose = ({ code, reason }) => {
      if (socket !== this.socket) return;
      if (REFUSALS.has(code)) {
        const error = new SyncClientError('refused', `the server refused this client: ${this.refusal ?? (reason || code)}`);
        return this.stop('refused', error);
      }
      if (opened) return this.lose(socket);
      // It never opened: ask over HTTP whether the URL is wrong or the server only away.
      void probeEndpoint(this.options.endpoint).then((answer) => {
        if (socket !== this.socket || this.stopped) return;
        if (answer instanceof SyncClientError) this.stop('failed', answer);
        else this.lose(socket);
      });
    };
  }

  /** Refused, a wrong URL, or closed: nothing more is tried. */
  get stopped(): boolean {
    return this.final || this.state === 'closed';
  }

  /** The connection is gone (lost, silent, offline): unanswered writes go again later; retry after a backoff. */
  private lose(socket: SocketLike): void {
    if (socket !== this.socket) return;
    this.drop(socket);
    if (this.stopped) return;
    this.reconnecting = true;
    this.enter('backoff');
    this.retryLater();
  }

  private retryLater(): void {
    this.retryTimer = setTimeout(() => this.connectNow(), retryDelay(this.attempt++));
  }

  /**
   * What the server sent cannot be applied (a migration, a batch): stop there, say why (once for
   * the same cause), and try again on the backoff from the stored position.
   */
  private fail(socket: SocketLike, error: SyncClientError): void {
    if (socket !== this.socket) return;
    const repeated = this.reported === error.message;
    this.reported = error.message;
    this.failure = error;
    this.drop(socket);
    this.enter('failed');
    this.retryLater();
    this.announce();
    if (SyncClientError.is(error, 'migration_failed')) this.options.onStopped(error);
    if (!repeated) this.events.emit('error', error);
  }

  /** Forgets a socket: nothing it still delivers is applied, writes it carried are answered empty. */
  private drop(socket: SocketLike): void {
    if (this.socket === socket) this.socket = undefined;
    socket.onopen = socket.onmessage = socket.onclose = null;
    if (socket.terminate) socket.terminate();
    else socket.close();
    this.push.connectionLost();
    this.subscriptions.disconnected();
    this.acks.cancel();
  }

  /** Refused or a wrong URL: not retried; `error` is reported once. */
  private stop(state: 'refused' | 'failed', error: SyncClientError): void {
    if (this.stopped) return;
    this.final = true;
    clearTimeout(this.retryTimer);
    this.failure = error;
    if (this.socket) this.drop(this.socket);
    this.enter(state);
    this.options.onStopped(error);
    this.events.emit('error', error);
  }

  private send(message: unknown): void {
    if (this.socket?.readyState === OPEN) this.socket.send(JSON.stringify(message));
  }

  private receive(socket: SocketLike, data: unknown): void {
    if (socket !== this.socket) return;
    this.heartbeat.heard();
    const message = parseServerMessage(data);
    if (message.type === 'pong') return;
    // One message at a time, in order; none after one that is bad or failed (its socket is dropped).
    this.queue = this.queue
      .then(() => {
        if (socket !== this.socket) return;
        if (message.type !== 'unusable') return this.handle(message);
        // Nothing of it is applied; a later session starts over from the stored position.
        this.fail(socket, new SyncClientError('bad_server_message', `the server sent a message this client cannot use (${message.problem})`));
      })
      .catch((error: Error) => {
        // The transaction rolled back: no partial apply, no position moved.
        if (SyncClientError.is(error, 'migration_failed')) return this.fail(socket, error);
        // Postgres' detail names the row (e.g. the key a foreign key did not find).
        const detail = (error as Error & { detail?: string }).detail;
        this.fail(socket, new SyncClientError('apply_failed', `applying a ${message.type} message failed and was rolled back: ${error.message}${detail ? ` (${detail})` : ''}`, { cause: error }));
      });
  }

  private async hello(socket: SocketLike): Promise<void> {
    const fields = await this.helloFields();
    if (socket !== this.socket) return;
    this.send(helloMessage(this.options.token, fields));
  }

  /** What the hello says about the replica, now (kept at close for the next start's early hello). */
  async helloFields(): Promise<HelloFields> {
    const [schemaVersion, position, workspaces] = await Promise.all([this.store.schemaVersion(), this.store.position(), this.store.workspaces()]);
    const subscriptions = await this.subscriptions.beforeHello(position !== null);
    const echoThrough = position === null ? undefined : await this.store.echoThrough(position);
    const fields: HelloFields = { clientId: this.options.clientId, schemaVersion, position, ...(subscriptions ? { subscriptions } : {}), ...(echoThrough ? { echoThrough } : {}) };
    return workspaces === null || position === null ? fields : { ...fields, workspaces };
  }

  private async handle(message: ClientServerMessage): Promise<void> {
    switch (message.type) {
      case 'welcome':
        // The server reverted migrations this replica applied: roll them back first (a snapshot follows).
        if (message.revert?.length) await this.store.revert(message.revert);
        await this.store.migrate(message.migrations);
        if ((await this.store.position()) === null) return; // a snapshot follows
        // The session's first welcome: what happened while away streams in now, `syncing` until the
        // server says it was all sent (a later welcome, of a migration, is not followed by up_to_date).
        if (this.state === 'handshaking') this.catchingUp = true;
        // A newer build syncs tables this replica was never hydrated with: a whole snapshot brings them (the outbox stays).
        if (this.store.unhydrated.length > 0) {
          this.send({ type: 'resnapshot' });
          return this.enter('hydrating');
        }
        return this.becomeLive();
      case 'snapshot_start':
        this.enter('hydrating');
        return this.snapshot.begin(message);
      case 'snapshot_batch':
        return this.snapshot.page(message);
      case 'snapshot_end':
        this.subscriptions.hydrated(await this.snapshot.end(message));
        return this.becomeLive();
      case 'subscription_refused':
        return this.subscriptions.refused(message.subscription, message.code, message.message);
      case 'unsubscribed':
        return this.subscriptions.unsubscribed(message.subscription);
      case 'changes':
        this.events.emit('pull:received', { changes: message.changes.length, position: message.position });
        await this.store.applyChanges(message.changes, message.position);
        this.reported = undefined;
        this.events.emit('pull:applied', { changes: message.changes.length, position: message.position });
        this.ackWhenStored(message.position);
        return;
      case 'scope_removed': {
        const refused = `you are no longer a member of workspace ${message.workspaceId}; this unsent write was dropped with it`;
        for (const write of await this.store.removeScope(message.workspaceId)) {
          this.events.emit('conflict', { table: write.table, pk: write.pk, result: { changeId: write.changeId, status: 'error', code: 'forbidden_scope', message: refused } });
        }
        return;
      }
      case 'up_to_date':
        this.catchingUp = false;
        return this.becomeLive();
      case 'resnapshot':
        this.enter('hydrating');
        return;
      case 'write_result':
        return this.push.answered(message.requestId, message.results);
      case 'error':
        // A refusal is followed by its close code, which reports it once (as `refused`).
        if (message.code === 'unauthenticated' || message.code === 'client_id_taken' || message.code === 'schema_ahead') this.refusal = message.message;
        else this.events.emit('error', new SyncClientError('server_error', `the server answered ${message.code}: ${message.message}`));
        if (message.requestId) this.push.answered(message.requestId, []); // the push stops; it goes again on the next connection
        return;
      case 'pong':
        return;
    }
  }

  private becomeLive(): void {
    this.attempt = 0;
    this.failure = undefined;
    this.enter('live');
    this.options.onReady();
    this.push.schedule();
    void this.subscriptions.live().catch((error: Error) => this.events.emit('error', error));
  }

  /** Acks `position` once it is stored, on the socket the message came on (see StoredAcks). */
  private ackWhenStored(position: string): void {
    const socket = this.socket;
    this.acks.ackWhenStored(position, (acked) => socket === this.socket && this.send({ type: 'sync_ack', position: acked }));
  }

  /** Pushes the outbox now (when live), or once more after the push under way. */
  schedulePush(): void {
    this.push.schedule();
  }

  /** Resolves when the push under way (if any) is done. */
  pushed(): Promise<void> {
    return this.push.done();
  }

  /** Ends the connection: nothing more is received or sent; waits for the message being applied. */
  async close(): Promise<void> {
    if (this.state === 'closed') return;
    this.enter('closed');
    this.heartbeat.stop();
    clearTimeout(this.retryTimer);
    globalThis.removeEventListener?.('offline', this.onNetworkLost);
    globalThis.removeEventListener?.('online', this.onNetworkBack);
    const socket = this.socket;
    if (socket) {
      this.socket = undefined;
      socket.onopen = socket.onmessage = socket.onclose = null;
      socket.close();
      this.push.connectionLost();
    }
    this.acks.cancel();
    await this.queue.catch(() => undefined);
    await this.push.done();
  }
}
