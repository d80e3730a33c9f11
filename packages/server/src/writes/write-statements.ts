import { COLUMN_CLOCKS, type ChangeResult, type Row, type SyncedTable, clockedColumns, mergeColumns, quoteIdent } from '@walsync/db/server';
import { createHash } from 'node:crypto';
import type pg from 'pg';
import { castOf, columnMap } from './columns';
import type { PreparedChange } from './prepare-change';
import { type KnownRow, keyOf, movedRow } from './known-rows';
import { type ReferenceIndex, refusedReference } from './references';

/**
 * The SQL of the write API, built from decisions: what each change of a batch needs the database
 * to run (its write and its receipt, or only a receipt), grouped into as few statements as keep the
 * batch's order. The transaction around them is the WriteService's.
 */

export interface Receipt {
  changeId: string;
  hash: string;
  result: ChangeResult;
}

/** What the database must run for one change: it stores the change's receipt and returns the row. */
export interface Statement {
  sql: string;
  params: unknown[];
  /** The answer, with `row` taken from what the statement returns. */
  answer: (row: Row | null) => ChangeResult;
  /** For an insert of a new row: what lets consecutive ones go as one multi-row statement. */
  newRow?: NewRow;
}

interface NewRow {
  table: SyncedTable;
  columns: string[];
  values: unknown[];
  changeId: string;
  hash: string;
  answer: ChangeResult;
}

/** One statement on the wire: a single change's, or a run of new rows inserted together. */
export interface Unit {
  indexes: number[];
  sql: string;
  params: unknown[];
  /** The row each change ends with, from what the statement returned. */
  rowsFor(returned: Row[]): Array<Row | null>;
}

/** What the batch knows while it decides, change by change, as if each earlier one had applied. */
export interface DecisionState {
  clientId: string;
  xid: string;
  memberOf: Set<string>;
  known: Map<string, KnownRow>;
  receipts: Map<string, Receipt>;
  tables: Map<string, SyncedTable>;
  /** The workspaces of the rows the batch references, and the memberships of the users it names. */
  references: ReferenceIndex;
}

/** The answer to a change that needs no statement, or the statement that applies (or rejects) it. */
export function decide(
  change: PreparedChange,
  state: DecisionState,
): ChangeResult | Statement {
  const { changeId, table } = change;
  const receipt = state.receipts.get(changeId);
  if (receipt) {
    if (receipt.hash !== change.hash) {
      return { changeId, status: 'error', code: 'replayed_change', message: `changeId ${changeId} was already used for a different change; every change needs its own id` };
    }
    if (receipt.result.status !== 'applied') return receipt.result;
    // A retry is answered with the row as it is now, not as the first answer had it: a client that never
    // stored that answer must not take back a state the server left since (a row deleted since would
    // return to a replica that hears no more of it). Gone, or in a workspace the user is not in: null.
    const current = state.known.get(keyOf(table, change.key));
    if (current?.written) return { ...receipt.result, duplicate: true };
    return { ...receipt.result, duplicate: true, row: current && state.memberOf.has(String(current.scope)) ? current.row : null };
  }
  // A changeId repeated within one batch answers like a retry.
  state.receipts.set(changeId, { changeId, hash: change.hash, result: { changeId, status: 'error', code: 'replayed_change', message: `changeId ${changeId} appears twice in one batch` } });

  const rowKey = keyOf(table, change.key);
  const existing = state.known.get(rowKey);
  const forbidden: ChangeResult = { changeId, status: 'error', code: 'forbidden_scope', message: `${table.name} rows are writable only in workspaces you are a member of` };
  if (existing && !state.memberOf.has(String(existing.scope))) return forbidden;
  const scope = change.scope ?? (typeof existing?.scope === 'string' ? existing.scope : undefined);
  if (scope !== undefined && !state.memberOf.has(scope)) {
    // A row of yours moved to a workspace you are not in: refused, and the row stays as the server has it.
    if (existing) return { changeId, status: 'rejected', reason: 'constraint', message: `${table.name} rows may only move to a workspace you are a member of`, row: existing.row };
    return forbidden;
  }
  if (scope !== undefined) {
    const refused = refusedReference(change, scope, movedRow(change, existing), state.tables, state.known, state.references);
    if (refused) return refused;
  }

  const receiptFor = (result: ChangeResult) => ({ result, hash: change.hash });
  if (!existing && change.op === 'update') {
    return rejection(change, state, receiptFor({ changeId, status: 'rejected', reason: 'not_found', message: `${table.name} ${JSON.stringify(change.key)} does not exist on the server`, row: null }));
  }
  if (!existing && change.op === 'delete') {
    return rejection(change, state, receiptFor({ changeId, status: 'applied', lsn: '', row: null }));
  }
  // Column by column: the written columns whose clock this write is newer than take its values.
  const written = change.op === 'delete' ? ['deleted_at'] : [...change.values.keys(), ...(change.op === 'insert' ? ['deleted_at'] : [])];
  const merge = existing ? mergeColumns(clockedColumns(table), { hlc: existing.hlc, clocks: existing.row[COLUMN_CLOCKS] }, written, change.hlc) : undefined;
  if (merge && merge.applied.length === 0) {
    const message = `the server holds a later write of ${merge.lost.join(', ')} (hlc ${String(existing!.hlc)})`;
    return rejection(change, state, receiptFor({ changeId, status: 'rejected', reason: 'stale', message, row: null, columns: { applied: [], lost: merge.lost } }));
  }
  const applied = new Set(merge?.applied ?? written);

  state.known.set(rowKey, { scope, hlc: merge?.hlc ?? change.hlc, row: { ...existing?.row, hlc: merge?.hlc ?? change.hlc, [COLUMN_CLOCKS]: merge?.clocks ?? {} }, written: true });
  const columns = columnMap(table);
  const params: unknown[] = [];
  const param = (value: unknown, cast: string) => {
    params.push(value);
    return `$${params.length}::${cast}`;
  };
  const columnParam = (name: string, value: unknown) => param(value, castOf(columns.get(name)!));
  let write: string;
  if (existing) {
    const sets = [...change.values].filter(([name]) => applied.has(name)).map(([name, value]) => `${quoteIdent(name)} = ${columnParam(name, value)}`);
    sets.push(`hlc = ${param(merge!.hlc, 'text')}`, `${COLUMN_CLOCKS} = ${param(JSON.stringify(merge!.clocks), 'jsonb')}`, `origin_client_id = ${param(state.clientId, 'text')}`);
    if (applied.has('deleted_at')) sets.push(change.op === 'delete' ? 'deleted_at = now()' : 'deleted_at = NULL');
    const match = table.primaryKey.map((name, position) => `${quoteIdent(name)} = ${columnParam(name, change.key[position])}`).join(' AND ');
    write = `UPDATE ${quoteIdent(table.name)} t SET ${sets.filter(Boolean).join(', ')} WHERE ${match} RETURNING to_jsonb(t.*) AS row`;
  } else {
    const names = [...table.primaryKey, ...change.values.keys(), 'hlc', 'origin_client_id'];
    const values = [
      ...table.primaryKey.map((name, position) => columnParam(name, change.key[position])),
      ...[...change.values].map(([name, value]) => columnParam(name, value)),
      param(change.hlc, 'text'),
      param(state.clientId, 'text'),
    ];
    write = `INSERT INTO ${quoteIdent(table.name)} AS t (${names.map(quoteIdent).join(', ')}) VALUES (${values.join(', ')}) RETURNING to_jsonb(t.*) AS row`;
  }
  const answer: ChangeResult = { changeId, status: 'applied', lsn: '', row: null, columns: { applied: written.filter((name) => applied.has(name)), lost: merge?.lost ?? [] } };
  const storing = storeReceipt(param, changeId, state.clientId, change.hash, answer, state.xid, 'applied.row');
  const newRow: NewRow | undefined = existing
    ? undefined
    : {
        table,
        columns: [...table.primaryKey, ...change.values.keys(), 'hlc', 'origin_client_id'],
        values: [...change.key, ...change.values.values(), change.hlc, state.clientId],
        changeId,
        hash: change.hash,
        answer,
      };
  return {
    sql: `WITH applied AS (${write}), receipt AS (${storing} FROM applied) SELECT row FROM applied`,
    params,
    answer: (row) => ({ ...answer, row }),
    newRow,
  };
}

/** A change answered without writing its row: the statement stores the receipt with the server's current row. */
function rejection(change: PreparedChange, state: { clientId: string; xid: string }, { result, hash }: { result: ChangeResult; hash: string }): Statement {
  const params: unknown[] = [];
  const param = (value: unknown, cast: string) => {
    params.push(value);
    return `$${params.length}::${cast}`;
  };
  const columns = columnMap(change.table);
  const match = change.table.primaryKey.map((name, position) => `${quoteIdent(name)} = ${param(change.key[position], castOf(columns.get(name)!))}`).join(' AND ');
  const current = `(SELECT to_jsonb(t.*) FROM ${quoteIdent(change.table.name)} t WHERE ${match})`;
  const receipt = storeReceipt(param, change.changeId, state.clientId, hash, result, state.xid, current);
  return {
    sql: `WITH receipt AS (${receipt} RETURNING result->'row' AS row) SELECT row FROM receipt`,
    params,
    answer: (row) => ({ ...result, row } as ChangeResult),
  };
}

/**
 * Turns decisions into statements. With `grouped`, a run of consecutive inserts of new rows into
 * one table with the same columns becomes a single multi-row INSERT (one executor start, one
 * receipt insert), which keeps the batch's order exactly.
 */
export function plan(decided: Array<ChangeResult | Statement>, grouped: boolean, clientId: string, xid: string): Unit[] {
  const units: Unit[] = [];
  let run: Array<{ index: number; statement: Statement & { newRow: NewRow } }> = [];
  const single = (index: number, statement: Statement): Unit => ({
    indexes: [index],
    sql: statement.sql,
    params: statement.params,
    rowsFor: (returned) => [returned[0] ?? null],
  });
  const flush = () => {
    if (run.length === 1) units.push(single(run[0]!.index, run[0]!.statement));
    else if (run.length > 1) units.push(insertTogether(run.map((each) => each.index), run.map((each) => each.statement.newRow), clientId, xid));
    run = [];
  };
  decided.forEach((decision, index) => {
    if (!('sql' in decision)) return;
    const newRow = decision.newRow;
    const fits = newRow && run.length > 0 && run[0]!.statement.newRow.table === newRow.table && run[0]!.statement.newRow.columns.join() === newRow.columns.join();
    if (!grouped || !newRow || (run.length > 0 && !fits)) flush();
    if (grouped && newRow) run.push({ index, statement: decision as Statement & { newRow: NewRow } });
    else units.push(single(index, decision));
  });
  flush();
  return units;
}

/** One INSERT … SELECT FROM unnest(…) for several new rows of a table, with their receipts. */
function insertTogether(indexes: number[], rows: NewRow[], clientId: string, xid: string): Unit {
  const table = rows[0]!.table;
  const columns = columnMap(table);
  const names = rows[0]!.columns;
  const params: unknown[] = names.map((_, position) => rows.map((row) => row.values[position]));
  const arrays = names.map((name, position) => `$${position + 1}::${name === 'hlc' || name === 'origin_client_id' ? 'text' : castOf(columns.get(name)!)}[]`);
  const rowKey = (row: string) => table.primaryKey.map((name) => `${row}->>${`'${name}'`}`).join(` || '|' || `);
  const base = names.length;
  params.push(
    rows.map((row) => row.values.slice(0, table.primaryKey.length).join('|')),
    rows.map((row) => row.changeId),
    rows.map((row) => row.hash),
    rows.map((row) => JSON.stringify(row.answer)),
    clientId,
    xid,
  );
  const sql = `WITH applied AS (
      INSERT INTO ${quoteIdent(table.name)} AS t (${names.map(quoteIdent).join(', ')}) SELECT * FROM unnest(${arrays.join(', ')})
      RETURNING to_jsonb(t.*) AS row),
    receipt AS (
      INSERT INTO write_receipt (change_id, client_id, request_hash, result, transaction_id)
      SELECT c.change_id, $${base + 5}::text, c.hash, jsonb_set(c.result, '{row}', a.row), $${base + 6}::text
        FROM applied a JOIN unnest($${base + 1}::text[], $${base + 2}::uuid[], $${base + 3}::text[], $${base + 4}::jsonb[]) AS c(key, change_id, hash, result)
          ON ${rowKey('a.row')} = c.key)
    SELECT row FROM applied`;
  return {
    indexes,
    sql,
    params,
    rowsFor(returned) {
      const byKey = new Map(returned.map((row) => [table.primaryKey.map((name) => String(row[name])).join('|'), row]));
      return rows.map((row) => byKey.get(row.values.slice(0, table.primaryKey.length).join('|')) ?? null);
    },
  };
}

const preparedNames = new Map<string, string>();
/**
 * Statements of the same shape have the same SQL; naming it lets each connection parse and plan it
 * once. The names are bounded by the number of shapes (tables × operations × column sets).
 */
export function preparedName(sql: string): string {
  let name = preparedNames.get(sql);
  if (!name) {
    name = `walsync_write_${createHash('sha1').update(sql).digest('hex').slice(0, 16)}`;
    if (preparedNames.size < 1000) preparedNames.set(sql, name);
  }
  return name;
}

/** `INSERT INTO write_receipt … SELECT …` storing `result` with its `row` taken from `rowExpression`. */
function storeReceipt(
  param: (value: unknown, cast: string) => string,
  changeId: string,
  clientId: string,
  hash: string,
  result: ChangeResult,
  xid: string,
  rowExpression: string,
): string {
  return `INSERT INTO write_receipt (change_id, client_id, request_hash, result, transaction_id)
          SELECT ${param(changeId, 'uuid')}, ${param(clientId, 'text')}, ${param(hash, 'text')},
                 jsonb_set(${param(JSON.stringify(result), 'jsonb')}, '{row}', coalesce(${rowExpression}, 'null'::jsonb)), ${param(xid, 'text')}`;
}

/** The current rows of every key the batch touches in `table`, locked until commit. */
export function lockRows(client: pg.PoolClient, table: SyncedTable, changes: PreparedChange[]) {
  const columns = columnMap(table);
  const keyColumns = table.primaryKey.map(quoteIdent).join(', ');
  const arrays = table.primaryKey.map((name, position) => `$${position + 1}::${castOf(columns.get(name)!)}[]`).join(', ');
  const params = table.primaryKey.map((_, position) => changes.map((change) => change.key[position]));
  const text = `SELECT to_jsonb(t.*) AS row FROM ${quoteIdent(table.name)} t WHERE (${keyColumns}) IN (SELECT * FROM unnest(${arrays})) FOR UPDATE OF t`;
  return client.query<{ row: Row }>({ name: preparedName(text), text, values: params });
}

/** What the database's refusal means for the client: bad data is an error, a broken constraint a rejection. */
export function refusal(changeId: string, error: unknown, row: Row | null): ChangeResult {
  const code = String((error as { code?: string }).code ?? '');
  const message = (error as Error).message;
  if (code.startsWith('23')) return { changeId, status: 'rejected', reason: 'constraint', message, row };
  if (code.startsWith('22')) return { changeId, status: 'error', code: 'invalid_value', message };
  throw error;
}
