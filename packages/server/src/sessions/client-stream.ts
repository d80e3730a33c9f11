import { type ServerMessage, type StreamChange, type SyncedTable, collapseRuns, formatPosition } from '@walsync/db/server';
import type pg from 'pg';
import type { WebSocket } from 'ws';
import type { Scope } from '../auth/scope';
import { type ChangeFeed, type FeedEntry, toStreamChange } from './change-feed';
import type { ClientView } from './client-view';
import { drained } from './flow-control';
import type { RoutedSession, SessionRouter } from './session-router';
import { awaitCapture } from './snapshot-fence';

/** A client that sees nothing of its own scope still hears its position move, at most this often. */
const IDLE_ADVANCE_MS = 1_000;
/** How long after its own writes a client's position follows capture's confirmed position. */
const FOLLOW_CAPTURE_MS = 3_000;

export interface StreamDependencies {
  pool: pg.Pool;
  feed: ChangeFeed;
  router: SessionRouter<ClientStream>;
  /** The synced tables now (they change when a migration runs). */
  tables(): SyncedTable[];
}

/** What a stream asks of its session. */
export interface StreamOwner {
  socket: WebSocket;
  clientId(): string;
  /** The user's scope and what the client holds of it: each entry is routed by them. */
  routing(): { scope: Scope; view: ClientView };
  /** The session streams (it is live: not in its handshake, hydrating or closed). */
  live(): boolean;
  closed(): boolean;
  /** New migrations being offered: the stream waits for them (changes after a migration need its schema). */
  offering(): Promise<void> | undefined;
  send(message: ServerMessage): void;
  /** Ends the session after an unexpected failure (the client resumes from its own position). */
  abandon(what: string, error: unknown): void;
  /**
   * After each batch the pump sent (`membershipsChanged`: it held a change to the user's memberships):
   * a promise while the session settles its scope, which the pump waits for.
   */
  streamed(membershipsChanged: boolean): Promise<void> | undefined;
}

/**
 * One client's stream of changes: its position, what it was told, and the pump that sends what the
 * feed (or, once caught up, the router) brings past it — never the client's own changes as data, a
 * row changed many times once, up_to_date once after a resume or a snapshot, and an empty batch now
 * and then so an idle client's position still moves. The session decides where it starts (a hello,
 * a snapshot) and what the client holds; the router routes entries to the stream's inbox.
 */
export class ClientStream implements RoutedSession {
  /** Entries the router found for this client since it caught up (null: it reads the feed itself). */
  inbox: FeedEntry[] | null = null;
  private current = 0n;
  private sentPosition = 0n;
  /** Until when the position follows capture past the last commit (after the client's own writes). */
  private followCaptureUntil = 0;
  /** After a resume, a verify or a snapshot, until the stream reaches the feed's tail (then up_to_date). */
  private catchingUp = false;
  /**
   * The WAL position a resumed client must have before it is told up_to_date: what was written when
   * it said hello. A commit just before the hello, not yet captured, is still "while it was away".
   */
  private upToDateAt = 0n;
  private awaitingCapture = false;
  private pumping = false;
  private pumpAgain = false;
  private advanceTimer: NodeJS.Timeout | undefined;
  /**
   * The newest `lsn` of the client's own writes it may have stored already: what an answer sent to it
   * carried, or after a resume, the WAL position at its hello (its writes before this session).
   */
  private answeredThrough = 0n;
  /** The client's own changes up to here are sent to it as data, not skipped (see `deliver`). */
  private echoThrough = 0n;
  private keysOf: { tables: SyncedTable[]; keys: Map<string, readonly string[]> } | undefined;

  constructor(
    private readonly deps: StreamDependencies,
    private readonly owner: StreamOwner,
  ) {}

  /** Where the stream stands for this client (commit LSN). */
  get position(): bigint {
    return this.current;
  }

  /** The newest position this client was told; it may acknowledge up to here. */
  get sent(): bigint {
    return this.sentPosition;
  }

  /** Whether the feed has moved past what this client was told (the endpoint's idle sweep wakes it). */
  get behind(): boolean {
    return this.owner.live() && this.current < this.deps.feed.tail;
  }

  /** From now on the stream reads the feed itself, until it catches up again (a snapshot or a resume starts it anew). */
  readFeed(): void {
    this.deps.router.catchUp(this);
  }

  /**
   * Goes on from `position`, which the client has (its own on resume, or a snapshot's). With
   * `upToDate`, the client is told up_to_date once the stream reaches the feed's tail; with
   * `capturedBy`, only once capture has stored everything written up to it (the hello's WAL position);
   * `echoThrough`: the client's own changes up to there come as data (its hello's `echoThrough`).
   */
  startAt(position: bigint, options: { upToDate?: boolean; capturedBy?: bigint; echoThrough?: bigint } = {}): void {
    this.current = position;
    this.sentPosition = position;
    if (options.upToDate) this.catchingUp = true;
    if (options.capturedBy !== undefined) {
      this.upToDateAt = options.capturedBy;
      // Resumed: the client may hold rows from answers of an earlier session that this stream has not
      // passed yet (everything it wrote before its hello). Those it lost since, it names (`echoThrough`).
      if (options.capturedBy > this.answeredThrough) this.answeredThrough = options.capturedBy;
      const named = options.echoThrough ?? 0n;
      const echo = named < options.capturedBy ? named : options.capturedBy;
      if (echo > this.echoThrough) this.echoThrough = echo;
    } else if (this.answeredThrough > this.echoThrough) {
      // A snapshot: a row the client stored from an answer, written after the snapshot's position, it
      // did not see, so the client removed it.
      this.echoThrough = this.answeredThrough;
    }
  }

  /** An answer to the client's writes is being sent: it stores their rows, up to `lsn`, before the stream passes them. */
  answered(lsn: bigint): void {
    if (lsn > this.answeredThrough) this.answeredThrough = lsn;
  }

  /** Called when the feed moved on: stream what this client has not seen. */
  pump(): void {
    if (!this.owner.live()) return;
    if (this.pumping) {
      this.pumpAgain = true;
      return;
    }
    this.pumping = true;
    void this.pumpLoop()
      .catch((error) => this.owner.abandon('streaming to the client failed', error))
      .finally(() => {
        this.pumping = false;
        if (this.pumpAgain) {
          this.pumpAgain = false;
          this.pump();
        }
      });
  }

  /**
   * For a moment after the client's own writes, the position follows capture past the last commit,
   * to the `lsn` their answers carry (read after COMMIT, it may lie past the commit).
   */
  followCapture(): void {
    this.followCaptureUntil = Date.now() + FOLLOW_CAPTURE_MS;
    this.deps.router.follow(this, this.followCaptureUntil);
  }

  /** The session ended: the router forgets the stream, and no idle advance is sent. */
  stop(): void {
    this.deps.router.remove(this);
    clearTimeout(this.advanceTimer);
  }

  /**
   * Streams what the client holds now, from its position up to `limit` (the stream has read
   * everything up to it); `removes`: entries also sent as removals of their old row; `reading`: the
   * scope whose entries are read. True when the user's memberships changed on the way.
   */
  async streamTo(limit: bigint, removes: (entry: FeedEntry) => boolean, reading: Scope): Promise<boolean> {
    let membershipsChanged = false;
    while (this.current < limit && !this.owner.closed()) {
      if (!(await drained(this.owner.socket, () => this.owner.closed()))) break;
      const { entries, upTo } = await this.deps.feed.read(this.current, reading);
      // A read that reached the feed's tail has seen everything up to the limit (history is complete there).
      const reach = upTo < limit && upTo < this.deps.feed.tail ? upTo : limit;
      if (this.deliver(entries.filter((entry) => entry.commitLsn <= reach), reach, removes)) membershipsChanged = true;
    }
    return membershipsChanged;
  }

  private async pumpLoop(): Promise<void> {
    const { feed, router } = this.deps;
    while (this.owner.live() && (this.current < feed.tail || (this.inbox?.length ?? 0) > 0)) {
      const offering = this.owner.offering();
      if (offering) await offering;
      if (!(await drained(this.owner.socket, () => this.owner.closed()))) return;
      const { entries, upTo } = this.inbox ? this.fromInbox() : await feed.read(this.current, this.owner.routing().scope);
      if (!this.owner.live()) return;
      const settling = this.owner.streamed(this.deliver(entries, upTo));
      if (settling) await settling;
    }
    if (!this.owner.live() || this.owner.offering() || this.current < feed.tail) return;
    // Caught up: from here on the router brings this client's entries (nothing arrived since the check above).
    router.caughtUp(this);
    // After the client's own writes the position follows capture past the last commit for a moment, so
    // that it reaches the `lsn` their answers carry (read after COMMIT, it may lie past the commit).
    const following = this.followCaptureUntil > Date.now() && feed.captured > this.current;
    if (following) this.current = feed.captured;
    // Caught up after a resume, a verify or a snapshot: the client is told once that it has everything
    // (after a resume: everything committed before its hello, once capture has stored it).
    if (this.catchingUp && feed.captured < this.upToDateAt) return this.awaitCapture();
    if (this.catchingUp) this.tell([], 'up_to_date');
    else if (following) this.tell([]);
    this.catchingUp = false;
  }

  /** What the router brought since the last read: every entry after the position that may concern this client. */
  private fromInbox(): { entries: FeedEntry[]; upTo: bigint } {
    const entries = this.inbox!.splice(0).filter((entry) => entry.commitLsn > this.current);
    const tail = this.deps.feed.tail;
    return { entries, upTo: tail > this.current ? tail : this.current };
  }

  /**
   * Streams on once capture reached `upToDateAt` (a session that cannot wait is closed; the client
   * resumes). A verify meanwhile may have moved `upToDateAt` on: the pump that follows waits again.
   */
  private awaitCapture(): void {
    if (this.awaitingCapture) return;
    this.awaitingCapture = true;
    void awaitCapture(this.deps.pool, this.deps.feed, this.upToDateAt).then(
      () => {
        this.awaitingCapture = false;
        this.pump();
      },
      (error) => this.owner.abandon('waiting for capture to reach the hello failed', error),
    );
  }

  /**
   * Sends what `entries` hold for this client and moves its position to `upTo` (`removes`: entries
   * also sent as removals of their old row); true when the user's memberships changed.
   */
  private deliver(entries: FeedEntry[], upTo: bigint, removes?: (entry: FeedEntry) => boolean): boolean {
    const { scope, view } = this.owner.routing();
    const clientId = this.owner.clientId();
    const changes: StreamChange[] = [];
    let ownChanges = false;
    let membershipChanged = false;
    for (const entry of entries) {
      if (scope.isOwnMembership(entry)) membershipChanged = true;
      // A row moved away from what the client holds is a removal; a membership row of a workspace not (yet) in scope only moves the scope.
      let route = view.route(scope, entry);
      if (route === 'skip' && removes?.(entry)) route = 'remove';
      if (entry.clientId === clientId && entry.commitLsn > this.echoThrough) {
        ownChanges = true;
        this.followCapture();
        // The client has its own write — but a row it moved out of its subscriptions still leaves by
        // the stream: a subscription's snapshot read before the write may have brought the row back.
        if (route === 'remove') changes.push(toStreamChange(entry, true));
        continue;
      }
      if (route === 'skip') continue;
      // A removal can take rows the client stored from answers with it (its foreign keys cascade) while
      // the stream has not yet passed their writes: from here the stream sends those writes as data.
      if ((route === 'remove' || entry.op === 'delete' || entry.op === 'truncate') && this.answeredThrough > this.echoThrough) this.echoThrough = this.answeredThrough;
      changes.push(toStreamChange(entry, route === 'remove'));
    }
    this.current = upTo;
    // A row changed many times (a catch-up after days away) goes once, as the replica would apply it.
    if (changes.length > 0 || ownChanges) this.tell(collapseRuns(changes, (table) => this.primaryKeys().get(table)));
    else this.scheduleIdleAdvance();
    return membershipChanged;
  }

  /** Each synced table's primary key, for the schema the process serves now. */
  private primaryKeys(): Map<string, readonly string[]> {
    const tables = this.deps.tables();
    if (this.keysOf?.tables !== tables) this.keysOf = { tables, keys: new Map(tables.map((table) => [table.name, table.primaryKey])) };
    return this.keysOf.keys;
  }

  /** Sends a changes batch at the current position (an empty one just moves the client on), or up_to_date. */
  private tell(changes: StreamChange[], type: 'changes' | 'up_to_date' = 'changes'): void {
    clearTimeout(this.advanceTimer);
    this.advanceTimer = undefined;
    this.sentPosition = this.current;
    const position = formatPosition(this.current);
    this.owner.send(type === 'changes' ? { type, position, changes } : { type, position });
  }

  private scheduleIdleAdvance(): void {
    this.advanceTimer ??= setTimeout(() => {
      this.advanceTimer = undefined;
      if (this.owner.live() && this.current > this.sentPosition) this.tell([]);
    }, IDLE_ADVANCE_MS);
  }
}
