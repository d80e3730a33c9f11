import type { Row, ServerMessage, SubscriptionDefinition, SubscriptionRef, SyncErrorCode, SyncedTable } from '@walsync/db/server';
import { formatPosition } from '@walsync/db/server';
import type pg from 'pg';
import { Scope } from '../auth/scope';
import { awaitHistoryVisible } from '../history/visibility';
import type { FeedEntry } from './change-feed';
import type { ClientStream } from './client-stream';
import { ClientView, type Refusal } from './client-view';
import type { SessionRouter } from './session-router';
import type { SnapshotMeeting, SnapshotSelection } from './snapshot';
import type { SnapshotFence } from './snapshot-fence';

export interface ScopeDependencies {
  pool: pg.Pool;
  /** The synced tables now (they change when a migration runs). */
  tables(): SyncedTable[];
  /** The subscriptions clients may hold (the schema package's definitions). */
  subscriptions: readonly SubscriptionDefinition[];
  router: SessionRouter<ClientStream>;
}

/** What the scope's changes ask of their session. */
export interface ScopeOwner {
  userId(): string;
  clientId(): string;
  stream: ClientStream;
  closed(): boolean;
  /** The session waits for a snapshot (`hydrating`) or streams again (`live`). */
  enter(state: 'hydrating' | 'live'): void;
  send(message: ServerMessage): void;
  fail(code: SyncErrorCode, message: string): void;
  /** Sends a snapshot of what `meet` selects at its fence (see SyncSession.snapshot); its position, or undefined if none was sent. */
  snapshot(meet: SnapshotMeeting, replace: boolean, subscriptions?: SubscriptionRef[], announce?: string[]): Promise<bigint | undefined>;
  /** Waits for history to reach the fence; where the snapshot meets a stream at `after`, or undefined (see SyncSession.reachFence). */
  reachFence(fence: SnapshotFence, after: bigint): Promise<bigint | undefined>;
}

/**
 * What one client holds of its user's data while its session runs — the user's workspaces (`scope`,
 * read from the memberships) and the client's subscriptions (`view`) — and every change to it:
 * workspaces the user gains or loses, subscriptions the client adds or drops. Each addition reaches
 * the client as a snapshot met by the stream exactly (`extend`); each loss as `scope_removed` or
 * `unsubscribed`. The router is told after each change.
 */
export class ScopeChanges {
  scope = new Scope('', new Set());
  view: ClientView;
  /** The user's memberships changed since the scope was read: `settle` reads it again (in turn with the client's messages). */
  private rescope = false;
  private removedTold = false;

  constructor(
    private readonly deps: ScopeDependencies,
    private readonly owner: ScopeOwner,
  ) {
    this.view = new ClientView(deps.subscriptions, false);
  }

  /**
   * The session's start: the user's scope now and, for a client that names subscriptions, those it
   * can still hold (the others are returned, refused).
   */
  async start(subscriptions: SubscriptionRef[] | undefined, resumed: boolean): Promise<Array<{ ref: SubscriptionRef; refusal: Refusal }>> {
    // A resumed client has what the stream passed: its scope must see all of it, as must new
    // subscriptions' root rows (read below, after it). A new client's snapshot reads the scope again,
    // as it sees it (see SyncSession.hydrate).
    const seeAll = resumed || (subscriptions?.length ?? 0) > 0;
    this.scope = seeAll ? await Scope.current(this.deps.pool, this.owner.userId()) : await Scope.of(this.deps.pool, this.owner.userId());
    this.view = new ClientView(this.deps.subscriptions, subscriptions !== undefined);
    const refused: Array<{ ref: SubscriptionRef; refusal: Refusal }> = [];
    for (const ref of subscriptions ?? []) {
      const result = await this.view.subscribe(this.deps.pool, this.scope, this.deps.tables(), ref, { resumed });
      if ('refusal' in result) refused.push({ ref, refusal: result.refusal });
    }
    this.reindex();
    return refused;
  }

  /** What a full snapshot selects when the user's workspaces are `scope` (read in the snapshot): the scope the client holds from then on. */
  adoptScope(scope: Scope): SnapshotSelection {
    const same = scope.workspaces.size === this.scope.workspaces.size && [...scope.workspaces].every((workspace) => this.scope.workspaces.has(workspace));
    if (!same) {
      this.scope = scope;
      this.reindex();
    }
    return this.view.selection(this.deps.tables(), [...scope.workspaces]);
  }

  /** The client was told of a workspace it lost (`scope_removed`): its writes are streamed back to it from then on (see SyncSession.write). */
  get toldRemoved(): boolean {
    return this.removedTold;
  }

  /** The user's memberships changed (the stream passed a change to them, or a write was refused in a workspace): `settle` reads them again. */
  membershipsChanged(): void {
    this.rescope = true;
  }

  /** Memberships changed that `settle` has yet to read. */
  get unsettled(): boolean {
    return this.rescope;
  }

  /** Tells the router what this client holds now (its scope, its subscriptions). */
  reindex(): void {
    if (this.owner.closed()) return;
    const { workspaces, userId } = this.scope;
    this.deps.router.index(this.owner.stream, { whole: !this.view.partial, workspaces, selectors: this.view.selectors(), userId, clientId: this.owner.clientId() });
  }

  /**
   * Adds a subscription: its rows arrive as a snapshot (`replace: false`), met by the stream exactly
   * (see `extend`); the stream then goes on with the subscription's changes.
   */
  async subscribe(ref: SubscriptionRef): Promise<void> {
    if (!this.view.partial) return this.owner.fail('whole_scope', 'this client holds its whole scope (its hello named no subscriptions), so it has every row a subscription could add');
    // Its root row may come from a commit the stream passed that Postgres does not show yet.
    await awaitHistoryVisible(this.deps.pool);
    const result = await this.view.admit(this.deps.pool, this.scope, this.deps.tables(), ref);
    if ('refusal' in result) return this.owner.send({ type: 'subscription_refused', subscription: ref, ...result.refusal });
    const adopt = () => {
      result.hold();
      return this.view.selection(this.deps.tables(), [...this.scope.workspaces], { subscriptions: [result.added], wholeTables: false });
    };
    const gained = (table: string, scopeId: string | null, row: Row | null) => row !== null && this.scope.workspaces.has(scopeId ?? '') && result.selects(table, row);
    if (!(await this.extend(adopt, { subscriptions: [result.added], announce: [], gained }))) return;
    await this.settle();
    this.owner.stream.pump();
  }

  /** Drops a subscription; nothing of it is sent after the answer (the client removes the rows only it held). */
  unsubscribe(ref: SubscriptionRef): void {
    if (!this.view.partial) return this.owner.fail('whole_scope', 'this client holds its whole scope (its hello named no subscriptions); there is nothing to unsubscribe');
    this.view.unsubscribe(ref);
    this.reindex();
    this.owner.send({ type: 'unsubscribed', subscription: ref });
  }

  /** The user's memberships changed (seen in the stream, or by a refused write): the scope is read again, and reconciled with what the client holds. */
  async settle(): Promise<void> {
    while (this.rescope && !this.owner.closed()) {
      this.rescope = false;
      const previous = this.scope.workspaces;
      this.scope = await Scope.current(this.deps.pool, this.owner.userId());
      this.reindex();
      await this.reconcile(previous);
    }
  }

  /** The client holds `held`; the scope is `this.scope`: announce the workspaces lost, hydrate those gained. */
  async reconcile(held: ReadonlySet<string>): Promise<void> {
    const current = this.scope;
    for (const removed of [...held].filter((workspace) => !current.workspaces.has(workspace))) {
      this.owner.send({ type: 'scope_removed', workspaceId: removed, position: formatPosition(this.owner.stream.position) });
      this.removedTold = true;
    }
    const added = [...current.workspaces].filter((workspace) => !held.has(workspace));
    if (added.length === 0) return;
    // Up to the snapshot the stream goes on with the workspaces the client holds; a gained workspace
    // brings what the client holds of it: the whole tables, and its subscriptions' rows there.
    this.scope = new Scope(current.userId, new Set([...current.workspaces].filter((workspace) => held.has(workspace))));
    const adopt = () => {
      this.scope = current;
      return this.view.selection(this.deps.tables(), added);
    };
    const gainedScope = new Scope(current.userId, new Set(added));
    const gained = (table: string, scopeId: string | null, row: Row | null) => this.view.holds(gainedScope, table, scopeId, row);
    if (!(await this.extend(adopt, { subscriptions: this.view.partial ? [] : undefined, gained, reading: current }))) return;
    // Memberships that changed again while the stream went up to the snapshot.
    await this.settle();
  }

  /**
   * Adds rows to what the client holds (a subscription, or workspaces it gained) where the snapshot
   * and the stream meet exactly: the stream goes on with what the client held, up to the snapshot's
   * position (its meeting point); then `adopt` makes the addition part of what it holds, the snapshot brings the added rows
   * as they are there, and the stream goes on from there with everything. Replayed from an
   * older position over the newer snapshot instead, a comment could arrive in one batch and its task's
   * move out of the subscription in the next: the replica would hold a comment without its task.
   */
  private async extend(
    adopt: () => SnapshotSelection,
    options: {
      subscriptions?: SubscriptionRef[];
      announce?: string[];
      gained: (table: string, scopeId: string | null, row: Row | null) => boolean;
      /** The scope whose changes are read up to the snapshot (the one the client will have: its gained workspaces' removals are among them). */
      reading?: Scope;
    },
  ): Promise<boolean> {
    // Up to the snapshot, a row the addition held that was deleted or left it goes too: the client may
    // hold it already (an unanswered write of its own; pages of an earlier snapshot of it, cut short),
    // and the snapshot, which does not have it, would not remove it.
    const { gained } = options;
    const removes = (entry: FeedEntry) =>
      (entry.op === 'delete' || entry.op === 'update') && gained(entry.table, entry.oldScopeId ?? entry.scopeId, entry.old) && !(entry.op === 'update' && gained(entry.table, entry.scopeId, entry.data));
    const { stream } = this.owner;
    this.owner.enter('hydrating');
    stream.readFeed();
    let adopted = false;
    const meet = async (fence: SnapshotFence) => {
      const { position } = stream;
      const meeting = await this.owner.reachFence(fence, position < fence.head ? position : fence.head);
      // The stream went past a transaction the snapshot missed: read a new one.
      if (meeting === undefined || meeting < position) return undefined;
      if (await stream.streamTo(meeting, removes, options.reading ?? this.scope)) this.rescope = true;
      if (this.owner.closed()) return undefined;
      adopted = true;
      const selection = adopt();
      this.reindex();
      return { selection, position: meeting };
    };
    const position = await this.owner.snapshot(meet, false, options.subscriptions, options.announce);
    if (position === undefined || !adopted) return false;
    stream.startAt(position);
    this.owner.enter('live');
    return true;
  }
}
