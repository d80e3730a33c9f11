import { createHash } from 'node:crypto';
import { type ChangeResult, ChangeSchema, type SyncedTable, WRITE_LIMITS, formatIssues, parseHlc } from '@walsync/db/server';
import { MAX_JSON_DEPTH, READ_ONLY_TABLES, SERVER_MANAGED, columnMap, depthOf, toParameter } from './columns';

/** A change that passed every check that needs no database. */
export interface PreparedChange {
  changeId: string;
  table: SyncedTable;
  op: 'insert' | 'update' | 'delete';
  /** Primary key values, in the table's key order. */
  key: unknown[];
  /** Columns to write and their bound parameters (server-managed columns left out). */
  values: Map<string, unknown>;
  hlc: string;
  /** Identifies the content, so a retry with the same changeId but other content is caught. */
  hash: string;
  /** The scope value this change writes, when its data sets the scope column. */
  scope: string | undefined;
}

type ErrorResult = Extract<ChangeResult, { status: 'error' }>;

export interface PrepareContext {
  clientId: string;
  tables: Map<string, SyncedTable>;
  now: number;
  maxClockSkewMs: number;
}

/** Validates one raw change: shape, table, columns, types, size and clock. */
export function prepareChange(raw: unknown, context: PrepareContext): PreparedChange | ErrorResult {
  const changeId = typeof (raw as { changeId?: unknown })?.changeId === 'string' ? (raw as { changeId: string }).changeId : '';
  const error = (code: ErrorResult['code'], message: string): ErrorResult => ({ changeId, status: 'error', code, message });

  const parsed = ChangeSchema.safeParse(raw);
  if (!parsed.success) {
    return error('invalid_change', formatIssues(parsed.error, 'change'));
  }
  const change = parsed.data;
  // Before anything serialises it: JSON nested deeper than the limit would overflow the stack.
  const tooDeep = Object.entries(change.data).find(([, value]) => depthOf(value) > MAX_JSON_DEPTH);
  if (tooDeep) return error('invalid_value', `${tooDeep[0]} must be JSON nested at most ${MAX_JSON_DEPTH} levels deep`);
  if (JSON.stringify(change.data).length > WRITE_LIMITS.maxChangeBytes) {
    return error('too_large', `the data of a change may take at most ${WRITE_LIMITS.maxChangeBytes} bytes as JSON`);
  }
  const table = context.tables.get(change.table);
  if (!table) return error('unknown_table', `"${change.table}" is not a synced table (synced: ${[...context.tables.keys()].join(', ')})`);
  if (READ_ONLY_TABLES.has(table.name)) return error('read_only_table', `${table.name} is managed by the server; clients cannot write it`);

  const hlc = parseHlc(change.hlc);
  if (!hlc) return error('invalid_change', `hlc "${change.hlc}" is not a hybrid logical clock timestamp (<15-digit ms>:<6-digit counter>:<client id>)`);
  if (hlc.node !== context.clientId) return error('invalid_change', `hlc node "${hlc.node}" is not this client (${context.clientId})`);
  if (hlc.wallMs > context.now + context.maxClockSkewMs) {
    return error('clock_skew', `hlc ${change.hlc} is ${hlc.wallMs - context.now} ms ahead of the server clock (at most ${context.maxClockSkewMs} ms allowed); fix the client clock`);
  }

  const columns = columnMap(table);
  const pkNames = Object.keys(change.pk).sort();
  if (pkNames.join() !== [...table.primaryKey].sort().join()) {
    return error('invalid_change', `pk of ${table.name} must hold exactly ${table.primaryKey.join(', ')}`);
  }
  const key: unknown[] = [];
  for (const name of table.primaryKey) {
    const checked = toParameter(columns.get(name)!, change.pk[name]);
    if (!checked.ok) return error('invalid_value', checked.message);
    key.push(checked.value);
  }

  const values = new Map<string, unknown>();
  if (change.op !== 'delete') {
    for (const [name, value] of Object.entries(change.data)) {
      const column = columns.get(name);
      if (!column) return error('unknown_column', `${table.name} has no column "${name}"`);
      if (SERVER_MANAGED.has(name) || table.derived?.includes(name)) continue;
      if (table.primaryKey.includes(name)) {
        if (value !== change.pk[name]) return error('invalid_change', `data.${name} differs from pk.${name}; a primary key cannot change`);
        continue;
      }
      const checked = toParameter(column, value);
      if (!checked.ok) return error('invalid_value', checked.message);
      values.set(name, checked.value);
    }
    if (change.op === 'insert') {
      const missing = table.columns.filter(
        (column) => !column.nullable && !column.hasDefault && !table.primaryKey.includes(column.name) && !values.has(column.name),
      );
      if (missing.length > 0) return error('invalid_value', `an insert into ${table.name} needs ${missing.map((column) => column.name).join(', ')}`);
    } else if (values.size === 0) {
      return error('invalid_change', 'an update must write at least one column');
    }
  }

  const scopeValue = table.primaryKey.includes(table.scope) ? key[table.primaryKey.indexOf(table.scope)] : values.get(table.scope);
  return {
    changeId: change.changeId,
    table,
    op: change.op,
    key,
    values,
    hlc: change.hlc,
    hash: createHash('sha256').update(JSON.stringify([context.clientId, change.table, change.op, change.pk, change.data, change.hlc])).digest('hex'),
    scope: typeof scopeValue === 'string' ? scopeValue : undefined,
  };
}
