import { z } from 'zod';
import { UUID_PATTERN } from '../rules/validation';

/**
 * Named, parameterized subscriptions: what a client that does not want its whole scope holds.
 * Defined once in the schema package (src/subscriptions.ts), so the server, every client and the
 * app share the names and the parameter types.
 *
 * A definition is a set of table rules of one shape: a table's rows whose `column` equals one of
 * the parameters (`task.project_id = projectId`). That shape is what lets the server find the
 * sessions a change goes to by looking its values up (see docs/decisions.md); rows further away
 * (a task's comments) are reached through a column the schema's triggers keep (`comment.project_id`,
 * see `SyncOptions.derived`). Every subscription lies inside the user's scope: its `root` row (the
 * row of `root.table` whose `root.column` equals the parameter) must be in one of the user's
 * workspaces, and every row it brings must be too.
 *
 * Synced tables no definition names (in the demo schema `workspace`, `workspace_member` and
 * `project`) are held whole, within the scope, by every client: they are what the subscribed rows
 * need to be consistent (the parents their foreign keys name, which every replica enforces).
 */
export type ParameterType = 'uuid' | 'text';

export interface TableRule<P extends string = string> {
  /** The column compared with the parameter. */
  column: string;
  param: P;
}

export interface SubscriptionDefinition {
  name: string;
  /** Each parameter's type. */
  params: Readonly<Record<string, ParameterType>>;
  /** The row that decides the subscription's scope: it must exist in one of the user's workspaces. */
  root: { table: string } & TableRule;
  /** The rows the subscription holds, table by table. */
  tables: Readonly<Record<string, TableRule>>;
}

/** A definition whose rules name only its own parameters (what `defineSubscription` checks). */
export interface TypedSubscriptionDefinition<P extends Record<string, ParameterType>> extends SubscriptionDefinition {
  params: P;
  root: { table: string } & TableRule<keyof P & string>;
  tables: Readonly<Record<string, TableRule<keyof P & string>>>;
}

/** A subscription as a client names it: a definition's name and its parameters. */
export const SubscriptionRefSchema = z.strictObject({
  name: z.string().min(1).max(100),
  params: z.record(z.string().max(100), z.union([z.string().max(1_000), z.number(), z.boolean(), z.null()])),
});
export type SubscriptionRef = z.infer<typeof SubscriptionRefSchema>;

/** The parameters a definition takes, as TypeScript sees them. */
export type ParamsOf<D> = D extends TypedSubscriptionDefinition<infer P> ? { [K in keyof P]: string } : never;

/**
 * Declares a subscription; the types of its parameters and rules are checked against each other.
 *
 * @example
 *   export const project = defineSubscription({
 *     name: 'project',
 *     params: { projectId: 'uuid' },
 *     root: { table: 'project', column: 'id', param: 'projectId' },
 *     tables: { project: { column: 'id', param: 'projectId' }, task: { column: 'project_id', param: 'projectId' } },
 *   });
 */
export function defineSubscription<const P extends Record<string, ParameterType>>(definition: TypedSubscriptionDefinition<P>): TypedSubscriptionDefinition<P> {
  return definition;
}

/** A subscription's identity: its name and its parameters in key order (the same subscription always gives the same key). */
export function subscriptionKey(ref: SubscriptionRef): string {
  const params = Object.keys(ref.params)
    .sort()
    .map((name) => [name, ref.params[name]]);
  return JSON.stringify([ref.name, params]);
}

/** Why a subscription cannot be held. */
export type SubscriptionProblem = 'unknown_subscription' | 'invalid_params' | 'forbidden';

export type CheckedSubscription =
  | { ok: true; definition: SubscriptionDefinition; ref: SubscriptionRef; key: string }
  | { ok: false; code: Exclude<SubscriptionProblem, 'forbidden'>; message: string };

/**
 * Checks a subscription against the definitions (its name, its parameters' names and types); the
 * scope is the server's to check. Parameters are normalised (uuids in lower case).
 */
export function checkSubscription(definitions: readonly SubscriptionDefinition[], ref: SubscriptionRef): CheckedSubscription {
  const definition = definitions.find((each) => each.name === ref.name);
  if (!definition) {
    const known = definitions.map((each) => each.name).join(', ') || 'none';
    return { ok: false, code: 'unknown_subscription', message: `there is no subscription "${ref.name}" (defined: ${known})` };
  }
  const params: Record<string, string> = {};
  for (const name of Object.keys(ref.params)) {
    if (!(name in definition.params)) return { ok: false, code: 'invalid_params', message: `subscription "${ref.name}" has no parameter "${name}" (its parameters: ${Object.keys(definition.params).join(', ')})` };
  }
  for (const [name, type] of Object.entries(definition.params)) {
    const value = ref.params[name];
    if (typeof value !== 'string') return { ok: false, code: 'invalid_params', message: `subscription "${ref.name}" needs the parameter ${name} (a ${type})` };
    if (type === 'uuid' && !UUID_PATTERN.test(value)) return { ok: false, code: 'invalid_params', message: `parameter ${name} of "${ref.name}" must be a uuid, got ${JSON.stringify(value.slice(0, 60))}` };
    params[name] = type === 'uuid' ? value.toLowerCase() : value;
  }
  const normalised = { name: ref.name, params };
  return { ok: true, definition, ref: normalised, key: subscriptionKey(normalised) };
}

/** The synced tables some definition names: a client with subscriptions holds their rows only through them. */
export function subscribedTables(definitions: readonly SubscriptionDefinition[]): Set<string> {
  return new Set(definitions.flatMap((definition) => Object.keys(definition.tables)));
}

/**
 * The rows a set of subscriptions holds, as lookups: for each table, each column a rule compares,
 * the values that select a row. Whether a row is held is a few map lookups, however many
 * subscriptions there are.
 */
export class SubscriptionMatcher {
  /** table → column → value → how many subscriptions select it. */
  private readonly selectors = new Map<string, Map<string, Map<string, number>>>();

  add(definition: SubscriptionDefinition, params: SubscriptionRef['params']): void {
    for (const [table, rule] of Object.entries(definition.tables)) this.adjust(table, rule.column, String(params[rule.param]), 1);
  }

  remove(definition: SubscriptionDefinition, params: SubscriptionRef['params']): void {
    for (const [table, rule] of Object.entries(definition.tables)) this.adjust(table, rule.column, String(params[rule.param]), -1);
  }

  /** Whether a row of `table` is selected by one of the subscriptions. */
  selects(table: string, row: Record<string, unknown>): boolean {
    const columns = this.selectors.get(table);
    if (!columns) return false;
    for (const [column, values] of columns) {
      const value = row[column];
      if (value !== null && value !== undefined && values.has(String(value))) return true;
    }
    return false;
  }

  private adjust(table: string, column: string, value: string, by: number): void {
    let columns = this.selectors.get(table);
    if (!columns) this.selectors.set(table, (columns = new Map()));
    let values = columns.get(column);
    if (!values) columns.set(column, (values = new Map()));
    const count = (values.get(value) ?? 0) + by;
    if (count > 0) values.set(value, count);
    else values.delete(value);
  }
}
