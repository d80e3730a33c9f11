import {
  type Row,
  type SubscriptionDefinition,
  type SubscriptionRef,
  type SyncedTable,
  SubscriptionMatcher,
  checkSubscription,
  quoteIdent,
  subscribedTables,
} from '@walsync/db/server';
import type pg from 'pg';
import type { Scope } from '../auth/scope';
import type { FeedEntry } from './change-feed';
import type { SnapshotSelection } from './snapshot';

/** A subscription a session holds. */
interface HeldSubscription {
  definition: SubscriptionDefinition;
  ref: SubscriptionRef;
}

export type Refusal = { code: 'unknown_subscription' | 'invalid_params' | 'forbidden'; message: string };

/** What the stream does with an entry for one client: send it, send it as the removal of its old row, or nothing. */
export type Route = 'send' | 'remove' | 'skip';

/**
 * What one client holds: its scope (the user's workspaces, read live), and — for a client that
 * asked for subscriptions — only the rows its subscriptions select of the tables they name (the
 * other synced tables whole, within the scope). Decides, entry by entry, what the stream sends,
 * and which rows a snapshot reads.
 *
 * @example
 *   const view = new ClientView(definitions, subscribed);
 *   const refusal = await view.subscribe(pool, scope, tables, ref);
 *   if (view.route(scope, entry) === 'send') send(entry);
 */
export class ClientView {
  private readonly held = new Map<string, HeldSubscription>();
  private readonly matcher = new SubscriptionMatcher();
  private readonly subscribedTables: Set<string>;

  /** `partial`: the client holds subscriptions only (it said so in its hello), else its whole scope. */
  constructor(
    private readonly definitions: readonly SubscriptionDefinition[],
    readonly partial: boolean,
  ) {
    this.subscribedTables = subscribedTables(definitions);
  }

  get subscriptions(): SubscriptionRef[] {
    return [...this.held.values()].map((held) => held.ref);
  }

  /** Checks a subscription (see `admit`) and holds it. */
  async subscribe(
    db: Pick<pg.Pool, 'query'>,
    scope: Scope,
    tables: SyncedTable[],
    ref: SubscriptionRef,
    options: { resumed?: boolean } = {},
  ): Promise<{ refusal: Refusal } | { added: SubscriptionRef }> {
    const result = await this.admit(db, scope, tables, ref, options);
    if ('refusal' in result) return result;
    result.hold();
    return { added: result.added };
  }

  /**
   * Checks a subscription: its name and parameters; for a new one (`resumed` false) also that its
   * root row is in the user's scope — an id that does not exist gets the same answer as one of
   * another workspace, so ids cannot be probed. A resumed one (the replica held it) is not checked
   * against the scope: like every row, its rows follow the scope (none while the user is out of the
   * workspace, all again when back), and a refusal would tell what exists elsewhere. `hold()` then
   * makes it part of what the client holds (a new one once the stream has met its snapshot).
   */
  async admit(
    db: Pick<pg.Pool, 'query'>,
    scope: Scope,
    tables: SyncedTable[],
    ref: SubscriptionRef,
    options: { resumed?: boolean } = {},
  ): Promise<{ refusal: Refusal } | { added: SubscriptionRef; hold(): void; selects(table: string, row: Row): boolean }> {
    const checked = checkSubscription(this.definitions, ref);
    if (!checked.ok) return { refusal: { code: checked.code, message: checked.message } };
    const { definition, key } = checked;
    if (!options.resumed) {
      const root = tables.find((table) => table.name === definition.root.table);
      const value = checked.ref.params[definition.root.param];
      const found = root
        ? await db.query<{ workspace_id: string }>(`SELECT ${quoteIdent(root.scope)}::text AS workspace_id FROM ${quoteIdent(root.name)} WHERE ${quoteIdent(definition.root.column)} = $1`, [value])
        : { rows: [] };
      const workspaceId = found.rows[0]?.workspace_id;
      if (!workspaceId || !scope.workspaces.has(workspaceId)) {
        return { refusal: { code: 'forbidden', message: `subscription "${ref.name}" names no ${definition.root.table} in your workspaces (${definition.root.param} ${String(value)})` } };
      }
    }
    const hold = () => {
      if (this.held.has(key)) return;
      this.held.set(key, { definition, ref: checked.ref });
      this.matcher.add(definition, checked.ref.params);
    };
    const alone = new SubscriptionMatcher();
    alone.add(definition, checked.ref.params);
    return { added: checked.ref, hold, selects: (table, row) => alone.selects(table, row) };
  }

  /** The rows the subscriptions select, as [table, column, value] (what the session router finds the client by). */
  selectors(): Array<[string, string, string]> {
    return [...this.held.values()].flatMap((held) =>
      Object.entries(held.definition.tables).map(([table, rule]): [string, string, string] => [table, rule.column, String(held.ref.params[rule.param])]),
    );
  }

  /** Drops a subscription; false when it was not held. */
  unsubscribe(ref: SubscriptionRef): boolean {
    const checked = checkSubscription(this.definitions, ref);
    const held = checked.ok ? this.held.get(checked.key) : undefined;
    if (!checked.ok || !held) return false;
    this.held.delete(checked.key);
    this.matcher.remove(held.definition, held.ref.params);
    return true;
  }

  /** Whether the client holds `row` of `table` in workspace `scopeId`. */
  holds(scope: Scope, table: string, scopeId: string | null | undefined, row: Row | null): boolean {
    if (!row || typeof scopeId !== 'string' || !scope.workspaces.has(scopeId)) return false;
    return !this.partial || !this.subscribedTables.has(table) || this.matcher.selects(table, row);
  }

  /**
   * What the client gets of an entry: an insert or update of a row it holds is sent (whole: a row
   * that moves in arrives complete); an update that takes a row it held out of what it holds (its
   * workspace, or its subscriptions) is the removal of the old row; a delete of a row it held is sent.
   */
  route(scope: Scope, entry: FeedEntry): Route {
    if (entry.op === 'truncate') return scope.holds(entry) ? 'send' : 'skip';
    if (entry.op === 'delete') return this.holds(scope, entry.table, entry.scopeId, entry.old) ? 'send' : 'skip';
    if (this.holds(scope, entry.table, entry.scopeId, entry.data)) return 'send';
    if (entry.op !== 'update') return 'skip';
    // Without the old row (history from before REPLICA IDENTITY FULL), its workspace decides.
    const before = entry.old ?? entry.data;
    return this.holds(scope, entry.table, entry.oldScopeId ?? entry.scopeId, before) ? 'remove' : 'skip';
  }

  /** Everything the client holds in `workspaces`: the whole-scope tables, and the subscriptions' rows (`only`: of these subscriptions alone). */
  selection(tables: SyncedTable[], workspaces: string[], only?: { subscriptions?: SubscriptionRef[]; wholeTables?: boolean }): SnapshotSelection {
    const chosen = new Map<string, 'all' | Map<string, string[]>>();
    const wholeTables = only?.wholeTables ?? true;
    for (const table of tables) {
      if (!this.partial || !this.subscribedTables.has(table.name)) {
        if (wholeTables) chosen.set(table.name, 'all');
      }
    }
    if (this.partial) {
      const keys = only?.subscriptions ? new Set(only.subscriptions.map((ref) => JSON.stringify(ref))) : undefined;
      for (const held of this.held.values()) {
        if (keys && !keys.has(JSON.stringify(held.ref))) continue;
        for (const [table, rule] of Object.entries(held.definition.tables)) {
          let columns = chosen.get(table);
          if (columns === 'all') continue;
          if (!columns) chosen.set(table, (columns = new Map()));
          columns.set(rule.column, [...(columns.get(rule.column) ?? []), String(held.ref.params[rule.param])]);
        }
      }
    }
    return { workspaces, tables: chosen };
  }
}
