import { type SubscriptionDefinition, subscribedTables } from '@walsync/db/server';
import type { FeedEntry } from './change-feed';

/** A session as the router sees it. */
export interface RoutedSession {
  /**
   * The entries routed to the session since it caught up with the feed (null while it is not caught
   * up: it reads the feed itself).
   */
  inbox: FeedEntry[] | null;
  /** Streams what it has not sent yet. */
  pump(): void;
}

/** What a session holds, as the keys changes are looked up by. */
export interface SessionKeys {
  /** The session holds its whole scope (no subscriptions). */
  whole: boolean;
  workspaces: Iterable<string>;
  /** [table, column, value]: rows of `table` whose `column` holds `value` (its subscriptions). */
  selectors: Array<[string, string, string]>;
  userId: string;
  clientId: string;
}

/** An inbox longer than this is dropped: the session reads the feed (memory stays bounded for a client that does not read). */
const MAX_INBOX = 10_000;

/**
 * Finds the sessions a change goes to by looking its values up, not by asking every session: an
 * index from workspaces, subscription values (`task.project_id = …`), users (their membership rows)
 * and client ids (their own writes, which move their position) to the sessions that hold them. A
 * caught-up session receives its entries in its inbox and is woken; one that is catching up reads
 * the feed itself and is woken on every advance. So the work a change costs grows with the sessions
 * that receive it, not with every session of the process. Sessions filter their entries exactly
 * (ClientView.route); the index only has to find every session that may want one.
 *
 * @example
 *   router.index(session, { whole: false, workspaces, selectors: [['task', 'project_id', id]], userId, clientId });
 *   feed.on('advanced', (_tail, entries) => router.route(entries));
 */
export class SessionRouter<S extends RoutedSession> {
  private readonly lookups = new Map<string, Set<S>>();
  private readonly keysOf = new Map<S, string[]>();
  private readonly catchingUp = new Set<S>();
  /** Sessions whose position follows capture for a moment (after their own writes): woken on every advance. */
  private readonly following = new Map<S, number>();
  private readonly selectorColumns = new Map<string, string[]>();
  private readonly subscribed: Set<string>;

  constructor(definitions: readonly SubscriptionDefinition[]) {
    this.subscribed = subscribedTables(definitions);
    for (const definition of definitions) {
      for (const [table, rule] of Object.entries(definition.tables)) {
        const columns = this.selectorColumns.get(table) ?? [];
        if (!columns.includes(rule.column)) columns.push(rule.column);
        this.selectorColumns.set(table, columns);
      }
    }
  }

  get sessions(): number {
    return this.keysOf.size;
  }

  /** Sets (or replaces) what `session` is found by. */
  index(session: S, keys: SessionKeys): void {
    this.unindex(session);
    const all = [`u\u0000${keys.userId}`, `c\u0000${keys.clientId}`];
    for (const workspace of keys.workspaces) all.push(`${keys.whole ? 'w' : 'b'}\u0000${workspace}`);
    for (const [table, column, value] of keys.selectors) all.push(`s\u0000${table}\u0000${column}\u0000${value}`);
    for (const key of all) {
      let sessions = this.lookups.get(key);
      if (!sessions) this.lookups.set(key, (sessions = new Set()));
      sessions.add(session);
    }
    this.keysOf.set(session, all);
  }

  /** Forgets a session (it closed). */
  remove(session: S): void {
    this.unindex(session);
    this.keysOf.delete(session);
    this.catchingUp.delete(session);
    this.following.delete(session);
  }

  private unindex(session: S): void {
    for (const key of this.keysOf.get(session) ?? []) {
      const sessions = this.lookups.get(key);
      sessions?.delete(session);
      if (sessions?.size === 0) this.lookups.delete(key);
    }
  }

  /** The session reads the feed itself until it catches up: woken on every advance. */
  catchUp(session: S): void {
    session.inbox = null;
    this.catchingUp.add(session);
  }

  /** The session has everything up to the feed's tail: from now on its entries come to its inbox. */
  caughtUp(session: S): void {
    session.inbox ??= [];
    this.catchingUp.delete(session);
  }

  /** Wakes `session` on every advance until `until` (ms since 1970). */
  follow(session: S, until: number): void {
    this.following.set(session, until);
  }

  /** New entries of the feed (or none: capture moved on): each goes to the inboxes of the sessions that may want it. */
  route(entries: readonly FeedEntry[]): void {
    const woken = new Set<S>(this.catchingUp);
    const now = Date.now();
    for (const [session, until] of this.following) {
      if (until < now) this.following.delete(session);
      else woken.add(session);
    }
    for (const entry of entries) {
      for (const session of this.candidates(entry)) {
        if (session.inbox === null) continue;
        if (session.inbox.length >= MAX_INBOX) {
          this.catchUp(session);
        } else {
          session.inbox.push(entry);
        }
        woken.add(session);
      }
    }
    for (const session of woken) session.pump();
  }

  /** Every session that may want `entry` (a superset: each session decides exactly). */
  private candidates(entry: FeedEntry): Set<S> {
    const found = new Set<S>();
    const add = (key: string) => this.lookups.get(key)?.forEach((session) => found.add(session));
    if (entry.op === 'truncate') {
      for (const session of this.keysOf.keys()) found.add(session);
      return found;
    }
    const workspaces = [entry.scopeId, entry.oldScopeId].filter((value): value is string => typeof value === 'string');
    for (const workspace of workspaces) add(`w\u0000${workspace}`);
    const columns = this.selectorColumns.get(entry.table);
    if (columns && this.subscribed.has(entry.table)) {
      for (const column of columns) {
        for (const row of [entry.data, entry.old]) {
          const value = row?.[column];
          if (value !== null && value !== undefined) add(`s\u0000${entry.table}\u0000${column}\u0000${String(value)}`);
        }
      }
    } else {
      for (const workspace of workspaces) add(`b\u0000${workspace}`);
    }
    if (entry.table === 'workspace_member') {
      for (const row of [entry.data, entry.old]) if (typeof row?.user_id === 'string') add(`u\u0000${row.user_id}`);
    }
    if (entry.clientId) add(`c\u0000${entry.clientId}`);
    return found;
  }
}
