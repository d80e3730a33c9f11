import type { Row } from '@walsync/db/server';
import type pg from 'pg';
import { HISTORY_SEEN, type HistorySeen, readSeeingHistory } from '../history/visibility';

/** A change as the scope rule sees it: its table, operation, row images and scope column value. */
export interface ScopedChange {
  table: string;
  op: string;
  data: Row | null;
  old: Row | null;
  /** The row's workspace (the table's scope column), null for a truncate. */
  scopeId: string | null;
  /** The workspace an update moved the row out of, if it did. */
  oldScopeId?: string | null;
}

/** The workspaces of a user, as SQL with the user id as parameter `$n` (one row per workspace). */
export function membershipSql(userParam: number): string {
  return `SELECT workspace_id::text FROM workspace_member WHERE user_id = $${userParam}::uuid AND deleted_at IS NULL`;
}

/**
 * What one user may see: the workspaces they are a member of, read live (never remembered across
 * sessions). The one home of the scope rule, in TypeScript for the in-memory feed and in SQL for
 * reads from change_history.
 *
 * @example
 *   const scope = await Scope.of(pool, userId);
 *   if (scope.holds(change)) send(change);
 */
export class Scope {
  constructor(
    readonly userId: string,
    readonly workspaces: ReadonlySet<string>,
  ) {}

  static async of(db: Pick<pg.Pool, 'query'>, userId: string): Promise<Scope> {
    const result = await db.query<{ workspace_id: string }>(membershipSql(1), [userId]);
    return new Scope(userId, new Set(result.rows.map((row) => row.workspace_id)));
  }

  /**
   * The scope as of everything the stream has passed: read once Postgres shows every transaction in
   * change_history (capture may have stored a membership change that Postgres still showed running,
   * as while a commit waits for a synchronous standby: read before it showed, a removed member kept
   * the workspace, and its changes, until they reconnected). One statement when none is late.
   */
  static async current(db: Pick<pg.Pool, 'query'>, userId: string): Promise<Scope> {
    const row = await readSeeingHistory(
      db,
      async () => (await db.query<{ workspaces: string[] } & HistorySeen>(`SELECT ARRAY(${membershipSql(1)}) AS workspaces, ${HISTORY_SEEN}`, [userId])).rows[0]!,
    );
    return new Scope(userId, new Set(row.workspaces));
  }

  /** A change to this user's own membership: their scope may have changed. */
  isOwnMembership(change: ScopedChange): boolean {
    return change.table === 'workspace_member' && (change.data ?? change.old)?.user_id === this.userId;
  }

  /** A change whose data this user may receive: a row of one of their workspaces, or a truncate. */
  holds(change: ScopedChange): boolean {
    if (change.scopeId === null) return change.op === 'truncate';
    return this.workspaces.has(change.scopeId);
  }

  /** A row moved out of one of this user's workspaces into one they cannot see: for them, a removal. */
  losesRow(change: ScopedChange): boolean {
    return !this.holds(change) && typeof change.oldScopeId === 'string' && this.workspaces.has(change.oldScopeId);
  }

  /** A change a session of this user reads: what it holds, rows moved away from it, and its own membership changes (which move the scope). */
  concerns(change: ScopedChange): boolean {
    return this.holds(change) || this.losesRow(change) || this.isOwnMembership(change);
  }

  /**
   * `concerns` as a condition on change_history, with its two parameters (`params()`) numbered from
   * `first`.
   */
  sqlCondition(first: number): string {
    return `(scope_id = ANY($${first}::uuid[]) OR old_scope_id = ANY($${first}::uuid[]) OR (scope_id IS NULL AND operation = 'truncate')
              OR (table_name = 'workspace_member' AND coalesce(data, old_data)->>'user_id' = $${first + 1}))`;
  }

  params(): unknown[] {
    return [[...this.workspaces], this.userId];
  }
}
