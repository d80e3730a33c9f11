import { type ChangeResult, type Row, type SyncedTable, UUID_PATTERN, quoteIdent } from '@walsync/db/server';
import { castOf, columnMap, toParameter } from './columns';
import type pg from 'pg';
import type { PreparedChange } from './prepare-change';
import { type KnownRow, keyOf } from './known-rows';

/**
 * References stay inside the scope: a row's foreign keys to other synced tables must name a row of
 * the row's own workspace, and its member columns a member of that workspace. A reference to a row
 * that does not exist and one to a row of another workspace get the same answer, so a writer cannot
 * learn which ids exist elsewhere.
 */

/** What a batch's references resolve to: each referenced row's workspace, and the memberships named. */
export interface ReferenceIndex {
  scopes: Map<string, string>;
  /** `${userId}:${workspaceId}` for every membership of the users the batch names. */
  memberships: Set<string>;
}

export const EMPTY_REFERENCES: ReferenceIndex = { scopes: new Map(), memberships: new Set() };

/** The values a change writes in a column, or (for a row moving to another workspace) keeps there. */
function referencedValue(change: PreparedChange, column: string, moving: Row | undefined): unknown {
  return change.values.has(column) ? change.values.get(column) : moving?.[column];
}

/** The ids the changes name, by referenced table, and the user ids in member columns (`moving`: rows the batch moves). */
function wanted(changes: PreparedChange[], tables: Map<string, SyncedTable>, moving: (change: PreparedChange) => Row | undefined) {
  const ids = new Map<SyncedTable, Set<string>>();
  const users = new Set<string>();
  for (const change of changes) {
    if (change.op === 'delete') continue;
    const moved = moving(change);
    for (const reference of change.table.references ?? []) {
      const target = tables.get(reference.table);
      const value = referencedValue(change, reference.column, moved);
      if (target && typeof value === 'string') ids.set(target, (ids.get(target) ?? new Set()).add(value));
    }
    for (const column of change.table.members ?? []) {
      const value = referencedValue(change, column, moved);
      if (typeof value === 'string') users.add(value);
    }
  }
  return { ids, users };
}

/**
 * Reads the workspace of every row the changes reference and the memberships of every user they
 * name (`moving` gives the current row of a change that moves it, whose kept references count too).
 * Runs on the batch's connection, inside its transaction.
 */
export async function readReferences(
  client: pg.ClientBase,
  changes: PreparedChange[],
  tables: Map<string, SyncedTable>,
  moving: (change: PreparedChange) => Row | undefined = () => undefined,
): Promise<ReferenceIndex> {
  const { ids, users } = wanted(changes, tables, moving);
  if (ids.size === 0 && users.size === 0) return EMPTY_REFERENCES;
  const index: ReferenceIndex = { scopes: new Map(), memberships: new Set() };
  await Promise.all([
    ...[...ids].map(async ([table, values]) => {
      // Compared as the key's own type, so its index serves the read (as text, every write scanned
      // the whole table). A value that is not of that type names no row: it is not sent.
      const key = columnMap(table).get(table.primaryKey[0]!)!;
      const typed = [...values].filter((value) => toParameter(key, value).ok);
      if (typed.length === 0) return;
      const text = `SELECT ${quoteIdent(key.name)}::text AS id, ${quoteIdent(table.scope)}::text AS scope FROM ${quoteIdent(table.name)} WHERE ${quoteIdent(key.name)} = ANY($1::${castOf(key)}[])`;
      const result = await client.query<{ id: string; scope: string }>(text, [typed]);
      for (const row of result.rows) index.scopes.set(keyOf(table, [row.id]), row.scope);
    }),
    (async () => {
      if (users.size === 0) return;
      const result = await client.query<{ member: string }>(
        `SELECT user_id::text || ':' || workspace_id::text AS member FROM workspace_member WHERE user_id = ANY($1::uuid[]) AND deleted_at IS NULL`,
        [[...users].filter((user) => UUID_PATTERN.test(user))],
      );
      for (const row of result.rows) index.memberships.add(row.member);
    })(),
  ]);
  return index;
}

/**
 * The refusal of a change whose references leave its workspace `scope`, or undefined. `known` holds
 * the rows as the batch has left them so far (a reference to a row inserted earlier in the batch holds).
 */
export function refusedReference(
  change: PreparedChange,
  scope: string,
  moving: Row | undefined,
  tables: Map<string, SyncedTable>,
  known: Map<string, KnownRow>,
  index: ReferenceIndex,
): ChangeResult | undefined {
  if (change.op === 'delete') return undefined;
  const refuse = (column: string, what: string): ChangeResult => ({
    changeId: change.changeId,
    status: 'error',
    code: 'forbidden_reference',
    message: `${column} must name ${what} of this row's workspace`,
  });
  for (const reference of change.table.references ?? []) {
    const target = tables.get(reference.table);
    const value = referencedValue(change, reference.column, moving);
    if (!target || typeof value !== 'string') continue;
    const key = keyOf(target, [value]);
    const found = known.has(key) ? known.get(key)!.scope : index.scopes.get(key);
    if (found !== scope) return refuse(reference.column, `a ${target.name}`);
  }
  for (const column of change.table.members ?? []) {
    const value = referencedValue(change, column, moving);
    if (typeof value === 'string' && !index.memberships.has(`${value}:${scope}`)) return refuse(column, 'a member');
  }
  return undefined;
}
