import { READ_ONLY_TABLES, SERVER_MANAGED_COLUMNS, type SyncedColumn, type SyncedTable, UUID_PATTERN as UUID, quoteIdent } from '@walsync/db/server';

export { READ_ONLY_TABLES, quoteIdent };

/** Columns the server sets itself; a client's values for them are ignored. */
export const SERVER_MANAGED: ReadonlySet<string> = new Set(SERVER_MANAGED_COLUMNS);

const TIMESTAMP = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}(:?\d{2})?)?$/;
const MAX_TEXT = 100_000;
/** Deeper JSON is refused per change (Postgres' own parser would fail the whole statement on its stack). */
export const MAX_JSON_DEPTH = 100;

/** The SQL cast a parameter of this column gets. */
export function castOf(column: SyncedColumn): string {
  if (column.enumName) return quoteIdent(column.enumName);
  switch (column.type) {
    case 'uuid':
    case 'text':
    case 'jsonb':
    case 'integer':
    case 'boolean':
    case 'double precision':
      return column.type;
    case 'timestamptz':
    case 'timestamp with time zone':
      return 'timestamptz';
    default:
      throw new Error(`column ${column.name} has type ${column.type}, which the write API does not handle yet`);
  }
}

/**
 * Checks one value against its column and returns the parameter to bind, or a message saying
 * what is wrong. Nothing here trusts the client: types, enum labels, sizes, nullability.
 */
export function toParameter(column: SyncedColumn, value: unknown): { ok: true; value: unknown } | { ok: false; message: string } {
  const fail = (expected: string) => ({ ok: false as const, message: `${column.name} must be ${expected}, got ${describe(value)}` });
  if (value === null) return column.nullable ? { ok: true, value: null } : fail('a value (it is not nullable)');
  if (column.enumValues) {
    return typeof value === 'string' && column.enumValues.includes(value) ? { ok: true, value } : fail(`one of ${column.enumValues.join(', ')}`);
  }
  switch (column.type) {
    case 'uuid':
      return typeof value === 'string' && UUID.test(value) ? { ok: true, value: value.toLowerCase() } : fail('a uuid');
    case 'text':
      return typeof value === 'string' && value.length <= MAX_TEXT ? { ok: true, value } : fail(`a string of at most ${MAX_TEXT} characters`);
    case 'double precision':
      return typeof value === 'number' && Number.isFinite(value) ? { ok: true, value } : fail('a finite number');
    case 'integer':
      return Number.isInteger(value) && Math.abs(value as number) <= 2 ** 31 - 1 ? { ok: true, value } : fail('a 32-bit integer');
    case 'boolean':
      return typeof value === 'boolean' ? { ok: true, value } : fail('true or false');
    case 'jsonb':
      return depthOf(value) <= MAX_JSON_DEPTH ? { ok: true, value: JSON.stringify(value) } : fail(`JSON nested at most ${MAX_JSON_DEPTH} levels deep`);
    case 'timestamptz':
    case 'timestamp with time zone':
      return typeof value === 'string' && TIMESTAMP.test(value) && !Number.isNaN(Date.parse(value.replace(' ', 'T')))
        ? { ok: true, value }
        : fail('an ISO 8601 timestamp');
    default:
      return fail(`a value of type ${column.type}`);
  }
}

/** How deep arrays and objects nest in `value` (a scalar is 0), without recursion. */
export function depthOf(value: unknown): number {
  let deepest = 0;
  const stack: Array<[unknown, number]> = [[value, 0]];
  while (stack.length > 0) {
    const [item, depth] = stack.pop()!;
    if (typeof item !== 'object' || item === null) continue;
    deepest = Math.max(deepest, depth + 1);
    if (deepest > MAX_JSON_DEPTH) return deepest;
    for (const child of Object.values(item)) stack.push([child, depth + 1]);
  }
  return deepest;
}

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  const text = JSON.stringify(value) ?? String(value);
  return `${Array.isArray(value) ? 'array' : typeof value} ${text.length > 40 ? `${text.slice(0, 40)}…` : text}`;
}

export function columnMap(table: SyncedTable): Map<string, SyncedColumn> {
  return new Map(table.columns.map((column) => [column.name, column]));
}
