import {
  ClientMessageSchema,
  CloseCodes,
  type ExtractedMigration,
  type Hello,
  type ServerMessage,
  type SubscriptionDefinition,
  type SubscriptionRef,
  type SyncErrorCode,
  type SyncedTable,
  formatIssues,
  formatPosition,
  parsePosition,
} from '@walsync/db/server';
import type pg from 'pg';
import type { Logger } from 'pino';
import type { WebSocket } from 'ws';
import { Scope } from '../auth/scope';
import { AuthenticationError, type Tokens, atExpiry } from '../auth/tokens';
import { historyHorizon } from '../history/retention';
import { WriteRequestError, type WriteService } from '../writes/write-service';
import type { ChangeFeed } from './change-feed';
import { ClientStream } from './client-stream';
import type { SessionRouter } from './session-router';
import { MessageBudget } from './flow-control';
import { type SchemaOffer, schemaOffer, welcomeMessage } from './schema-offer';
import type { SnapshotMeeting, Snapshots } from './snapshot';
import { type SnapshotFence, awaitCapture, meetingPoint, walInsertPosition } from './snapshot-fence';
import { ScopeChanges } from './scope-changes';

export interface SessionDependencies {
  pool: pg.Pool;
  snapshots: Snapshots;
  feed: ChangeFeed;
  /** The synced tables now (they change when a migration runs). */
  tables(): SyncedTable[];
  writes: WriteService;
  tokens: Tokens;
  log: Logger;
  /** The migrations the server applied, in order (its catalog). */
  migrations(): Promise<ExtractedMigration[]>;
  /** The migrations the server reverted since it applied them. */
  reverted(): Promise<string[]>;
  /** The subscriptions clients may hold (the schema package's definitions). */
  subscriptions: readonly SubscriptionDefinition[];
  /** Finds the streams each new change goes to. */
  router: SessionRouter<ClientStream>;
}

type State = 'handshake' | 'hydrating' | 'live' | 'closed';

const MAX_BAD_MESSAGES = 20;

/**
 * One connected client: handshake (token, schema), hydration from a consistent snapshot, then its
 * stream of live changes from its position (a ClientStream), acknowledgements, verification, scope
 * and subscription changes (ScopeChanges), and writes over the same socket. See docs/protocol.md.
 */
export class SyncSession {
  private state: State = 'handshake';
  userId = '';
  clientId = '';
  /** What the client holds of its user's scope, and the changes to it. */
  private readonly held: ScopeChanges;
  /** The client's changes, from its position. */
  readonly stream: ClientStream;
  private stopExpiry: (() => void) | undefined;
  private readonly budget = new MessageBudget(100, 200);
  private badMessages = 0;
  private queue: Promise<void> = Promise.resolve();
  /** The latest migration this client has, or was offered in this session. */
  private clientSchema: string | null = null;
  /** New migrations being offered: the stream waits for them (changes after a migration need its schema). */
  private offering: Promise<void> | undefined;

  constructor(
    private readonly socket: WebSocket,
    private readonly deps: SessionDependencies,
  ) {
    this.stream = new ClientStream(deps, {
      socket,
      clientId: () => this.clientId,
      routing: () => ({ scope: this.held.scope, view: this.held.view }),
      live: () => this.state === 'live',
      closed: () => this.state === 'closed',
      offering: () => this.offering,
      send: (message) => this.send(message),
      abandon: (what, error) => this.abandon(what, error),
      // The user's memberships changed: drop removed workspaces, hydrate added ones — in turn with the
      // client's messages, so a write it sent before is in the snapshot of a workspace it gets back.
      streamed: (membershipsChanged) => {
        if (membershipsChanged) this.held.membershipsChanged();
        return this.held.unsettled ? this.inTurn(() => this.held.settle()) : undefined;
      },
    });
    this.held = new ScopeChanges(deps, {
      userId: () => this.userId,
      clientId: () => this.clientId,
      stream: this.stream,
      closed: () => this.state === 'closed',
      enter: (state) => (this.state = state),
      send: (message) => this.send(message),
      fail: (code, message) => this.fail(code, message),
      snapshot: (meet, replace, subscriptions, announce) => this.snapshot(meet, replace, subscriptions, announce),
      reachFence: (fence, after) => this.reachFence(fence, after),
    });
    socket.on('message', (data, isBinary) => this.receive(isBinary ? null : data.toString()));
    socket.on('close', () => this.dispose());
  }

  close(code: number, reason: string): void {
    if (this.state === 'closed') return;
    this.socket.close(code, reason.slice(0, 120));
    this.dispose();
  }

  private dispose(): void {
    this.state = 'closed';
    this.stream.stop();
    this.stopExpiry?.();
  }

  private send(message: ServerMessage | string): void {
    if (this.state === 'closed' || this.socket.readyState !== this.socket.OPEN) return;
    this.socket.send(typeof message === 'string' ? message : JSON.stringify(message));
  }

  /** An unexpected failure (the database went away, …): the session ends; the client resumes from its own position. */
  private abandon(what: string, error: unknown): void {
    if (this.state === 'closed') return;
    this.deps.log.warn({ err: error, clientId: this.clientId }, `${what}; closing the session so the client resumes`);
    this.close(CloseCodes.internalError, 'the server failed; reconnect and resume');
  }

  private fail(code: SyncErrorCode, message: string): void {
    this.send({ type: 'error', code, message });
  }

  private receive(text: string | null): void {
    if (!this.budget.take()) {
      this.fail('flood', `more than ${this.budget.rate} messages a second`);
      this.close(CloseCodes.flood, 'too many messages');
      return;
    }
    let message;
    try {
      if (text === null) throw new Error('binary frames are not part of the protocol; send JSON text');
      const parsed = ClientMessageSchema.safeParse(JSON.parse(text));
      if (!parsed.success) throw new Error(formatIssues(parsed.error, 'message'));
      message = parsed.data;
    } catch (error) {
      if (this.state === 'handshake') {
        this.close(CloseCodes.protocolViolation, `the first message must be a valid hello (${(error as Error).message})`);
        return;
      }
      this.fail('bad_message', (error as Error).message);
      if (++this.badMessages > MAX_BAD_MESSAGES) this.close(CloseCodes.flood, 'too many bad messages');
      return;
    }
    // A heartbeat is answered at once, even while a long request (a snapshot) runs: it proves the
    // process is alive and tells nothing else (the handshake timeout still ends a socket without hello).
    if (message.type === 'ping') return this.send({ type: 'pong' });
    // One message at a time, in order.
    void this.inTurn(() => this.handle(message));
  }

  /** Runs `work` after the client's messages received so far, before the ones after (a failure ends the session). */
  private inTurn(work: () => Promise<void>): Promise<void> {
    return (this.queue = this.queue.then(work).catch((error) => this.abandon('a session message failed', error)));
  }

  private async handle(message: ReturnType<typeof ClientMessageSchema.parse>): Promise<void> {
    if (this.state === 'closed') return;
    if (this.state === 'handshake') {
      if (message.type !== 'hello') return this.close(CloseCodes.protocolViolation, 'the first message must be hello');
      return this.hello(message);
    }
    switch (message.type) {
      case 'hello':
        return this.fail('bad_message', 'hello was already received');
      case 'sync_ack':
        return this.ack(parsePosition(message.position));
      case 'sync_verify':
        return this.verify(parsePosition(message.position));
      case 'write':
        return this.write(message.requestId, message.changes);
      case 'resnapshot':
        return this.hydrate('requested', 'the client asked for a new snapshot');
      case 'subscribe':
        return this.held.subscribe(message.subscription);
      case 'unsubscribe':
        return this.held.unsubscribe(message.subscription);
      case 'ping':
        return; // answered on arrival
    }
  }

  private async hello(hello: Hello): Promise<void> {
    let principal;
    try {
      principal = await this.deps.tokens.verify(hello.token);
    } catch (error) {
      if (!(error instanceof AuthenticationError)) throw error;
      this.fail('unauthenticated', error.message);
      return this.close(CloseCodes.unauthenticated, error.message);
    }
    this.userId = principal.userId;
    this.clientId = hello.clientId;
    if (principal.expiresAt) {
      this.stopExpiry = atExpiry(principal.expiresAt, () => this.close(CloseCodes.unauthenticated, 'the token expired'));
    }

    const catalog = await this.deps.migrations();
    const offer = await schemaOffer(catalog, this.deps.reverted, hello.schemaVersion);
    if (offer.ahead) {
      const message = `the client's schema ${hello.schemaVersion} is not one this server has applied (server: ${catalog.at(-1)?.name ?? 'none'}); update the server before this client`;
      this.fail('schema_ahead', message);
      return this.close(CloseCodes.schemaAhead, 'client schema is newer than the server');
    }
    if (!(await this.deps.writes.claimClientId(this.clientId, this.userId, catalog.at(-1)?.name ?? null))) {
      const message = `the client id ${this.clientId} belongs to another user's client; a replica serves one user — open a new one for this user`;
      this.fail('client_id_taken', message);
      return this.close(CloseCodes.clientIdTaken, 'the client id belongs to another user');
    }
    // A client that names subscriptions holds only those (checked against the scope now: one it can no longer hold is refused).
    const refused = await this.held.start(hello.subscriptions, hello.position !== null);
    this.welcome(catalog, offer);
    for (const { ref, refusal } of refused) this.send({ type: 'subscription_refused', subscription: ref, ...refusal });
    if (offer.revert) return this.hydrate('schema_reverted', `the server reverted ${hello.schemaVersion}`);
    if (hello.position === null) return this.hydrate();
    // Scope is computed, not remembered: what the user lost or gained while this client was away.
    const echoThrough = hello.echoThrough === undefined ? undefined : parsePosition(hello.echoThrough);
    if ((await this.resume(parsePosition(hello.position), echoThrough)) && hello.workspaces) await this.held.reconcile(new Set(hello.workspaces));
    this.stream.pump();
  }

  /**
   * Continues from a position the client has (true: the caller pumps), or re-snapshots when that
   * position cannot be served (false).
   */
  private async resume(from: bigint, echoThrough?: bigint): Promise<boolean> {
    // Another process may have told the client a position this one has not read yet.
    if (from > this.deps.feed.known) await this.deps.feed.refresh();
    if (from > this.deps.feed.known) {
      await this.hydrate('position_ahead', `position ${formatPosition(from)} is ahead of this server's history (${this.deps.feed.tailPosition})`);
      return false;
    }
    const [horizon, now] = await Promise.all([historyHorizon(this.deps.pool), walInsertPosition(this.deps.pool)]);
    if (from < horizon) {
      await this.hydrate('history_pruned', `history before ${formatPosition(horizon)} was pruned; position ${formatPosition(from)} is older`);
      return false;
    }
    this.stream.readFeed();
    this.stream.startAt(from, { upToDate: true, capturedBy: now, echoThrough });
    this.state = 'live';
    return true;
  }

  /** A full snapshot of the client's scope, replacing what it has from the server. */
  private async hydrate(reason?: 'history_pruned' | 'position_ahead' | 'requested' | 'schema_reverted', message?: string): Promise<void> {
    this.state = 'hydrating';
    this.stream.readFeed();
    if (reason) this.send({ type: 'resnapshot', reason, message: message! });
    const meet = async (fence: SnapshotFence, reader: Pick<pg.ClientBase, 'query'>) => {
      // The client holds nothing yet: the point may move before a late transaction (see meetingPoint).
      const position = await this.reachFence(fence, fence.head, true);
      if (position === undefined) return undefined;
      // The user's workspaces as the snapshot sees them: a membership changed since the hello (while
      // the snapshot waited its turn) is in the snapshot or after its position, where the stream sends
      // it. Read at the hello only, an added one never arrived, and a removed one's rows did.
      return { selection: this.held.adoptScope(await Scope.of(reader, this.userId)), position };
    };
    const position = await this.snapshot(meet, true, this.held.view.partial ? this.held.view.subscriptions : undefined);
    if (position === undefined) return;
    this.stream.startAt(position, { upToDate: true });
    this.state = 'live';
    this.stream.pump();
  }

  /** Sends a snapshot of what `meet` selects; `replace` says whether it replaces everything the client has, `subscriptions` which it brings. */
  private snapshot(meet: SnapshotMeeting, replace: boolean, subscriptions?: SubscriptionRef[], announce?: string[]): Promise<bigint | undefined> {
    const target = { userId: this.userId, socket: this.socket, closed: () => this.state === 'closed', send: (message: ServerMessage | string) => this.send(message) };
    return this.deps.snapshots.send({ ...target, close: (code, reason) => this.close(code, reason) }, this.deps.tables(), meet, { replace, subscriptions, announce });
  }

  /**
   * Waits for history to reach the snapshot's fence, and returns where the snapshot meets a stream at
   * `after` (see `meetingPoint`, and `movable` there); undefined when it cannot (it is read again then).
   */
  private async reachFence(fence: SnapshotFence, after: bigint, movable = false): Promise<bigint | undefined> {
    await awaitCapture(this.deps.pool, this.deps.feed, fence.insertLsn);
    return meetingPoint(this.deps.pool, fence, after, movable);
  }

  /**
   * The server's schema moved on (a migration ran; `reloaded` settles once this process has the new
   * schema): the client is offered the migrations it lacks at once, in a `welcome` like the first,
   * before any change written after them.
   */
  schemaMoved(reloaded: Promise<void>): void {
    if (this.state === 'closed' || this.state === 'handshake') return;
    const offer = (this.offering ?? Promise.resolve())
      .then(() => reloaded)
      .then(() => this.deps.migrations())
      .then(async (catalog) => {
        const offer = await schemaOffer(catalog, this.deps.reverted, this.clientSchema);
        if ((offer.migrations.length === 0 && !offer.revert) || offer.ahead || this.state === 'closed') return;
        this.welcome(catalog, offer);
        // What the reverted migration held is gone on the server: the client re-snapshots (keeping its outbox).
        if (offer.revert) this.queue = this.queue.then(() => this.hydrate('schema_reverted', 'the server reverted a migration this client applied'));
      })
      .catch((error) => this.abandon('offering new migrations failed', error))
      .finally(() => {
        if (this.offering === offer) this.offering = undefined;
        this.stream.pump();
      });
    this.offering = offer;
  }

  /** Tells the client the server's schema and what to apply (or roll back) to reach it. */
  private welcome(catalog: ExtractedMigration[], offer: SchemaOffer): void {
    this.clientSchema = catalog.at(-1)?.name ?? null;
    this.send(welcomeMessage({ userId: this.userId, clientId: this.clientId, workspaces: this.held.scope.workspaces }, catalog, offer));
  }

  private async ack(position: bigint): Promise<void> {
    if (position > this.stream.sent) {
      return this.fail('ack_unsent', `position ${formatPosition(position)} was never sent to this client (last sent: ${formatPosition(this.stream.sent)})`);
    }
    await this.deps.pool.query(
      `UPDATE sync_client SET acked_position = $2, acked_commit_lsn = $3, last_seen = now() WHERE client_id = $1 AND (acked_commit_lsn IS NULL OR acked_commit_lsn <= $3)`,
      [this.clientId, formatPosition(position), position.toString()],
    );
  }

  private async verify(position: bigint): Promise<void> {
    if (this.state !== 'live') return this.fail('not_ready', 'verify is answered once the session is live (after the snapshot)');
    // The same as resuming from that position: replay what follows it, or re-snapshot if it cannot be served.
    if (await this.resume(position)) this.stream.pump();
  }

  /**
   * Applies a write batch and answers it. Once the client was told of a workspace it lost, its writes
   * are streamed back to it too: on `scope_removed` it drops its unanswered writes there, also those
   * on their way here, and this session may still apply them (the user is back in the workspace). Then
   * only the answer would bring their rows, after the snapshot that gave the workspace back, and a
   * client that stops before the answer would never have them (the stream skips a client's own changes).
   */
  private async write(requestId: string, changes: unknown[]): Promise<void> {
    try {
      const batch = { clientId: this.clientId, changes };
      const apply = () => this.deps.writes.applyBatch(this.userId, batch, { streamBack: this.held.toldRemoved });
      let { results } = await apply();
      if (results.some((result) => result.status === 'error' && result.code === 'forbidden_scope') && this.state === 'live') {
        // The memberships may have changed before the stream brought the change to this session: the
        // client must hear of a workspace it lost (scope_removed) before a refusal in it, and a write
        // refused while the user was briefly out is run again once they are back (idempotent by changeId).
        const before = this.held.scope.workspaces;
        this.held.membershipsChanged();
        await this.held.settle();
        if ([...before].every((workspace) => this.held.scope.workspaces.has(workspace))) ({ results } = await apply());
      }
      // Streamed back, the changes are not the client's own to the stream: its position follows capture to their `lsn` anyway.
      if (this.held.toldRemoved && results.some((result) => result.status === 'applied')) this.stream.followCapture();
      for (const result of results) if (result.status === 'applied' && result.lsn) this.stream.answered(parsePosition(result.lsn));
      this.send({ type: 'write_result', requestId, results });
    } catch (error) {
      if (!(error instanceof WriteRequestError)) throw error;
      this.send({ type: 'error', code: 'write_failed', message: `request ${requestId}: ${error.message}`, requestId });
    }
  }
}
