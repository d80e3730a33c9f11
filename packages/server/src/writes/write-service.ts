import { type ChangeResult, type Row, type SyncedTable, WRITE_LIMITS, type WriteBatchResult, WriteBatchSchema } from '@walsync/db/server';
import type pg from 'pg';
import { CLIENT_MESSAGE_PREFIX } from '../history/server-schema';
import { castOf, columnMap, quoteIdent } from './columns';
import { type PreparedChange, prepareChange } from './prepare-change';

/** The request as a whole is unusable (its shape, its size); no change in it was looked at. */
export class WriteRequestError extends Error {
  constructor(
    readonly code: 'invalid_batch' | 'too_large',
    message: string,
  ) {
    super(message);
  }
}

/** A change the database refused; the batch is retried without it. */
class ChangeRefused extends Error {
  constructor(
    readonly index: number,
    readonly result: ChangeResult,
  ) {
    super(result.status);
  }
}

export interface WriteServiceOptions {
  maxClockSkewMs: number;
  now?: () => number;
}

interface Receipt {
  changeId: string;
  hash: string;
  result: ChangeResult;
  xid: string;
}

type Applied = Extract<ChangeResult, { status: 'applied' }>;

const keyOf = (values: unknown[]) => JSON.stringify(values);

/**
 * The write API: applies a client's batch in one transaction with last-writer-wins by HLC,
 * idempotently by changeId, within the user's workspaces, and answers every change.
 *
 * @example
 *   const writes = new WriteService(pool, tables, { maxClockSkewMs: 60_000 });
 *   const { results } = await writes.applyBatch(userId, { clientId, changes });
 */
export class WriteService {
  private readonly tables: Map<string, SyncedTable>;

  constructor(
    private readonly pool: pg.Pool,
    tables: SyncedTable[],
    private readonly options: WriteServiceOptions,
  ) {
    this.tables = new Map(tables.map((table) => [table.name, table]));
  }

  async applyBatch(userId: string, raw: unknown): Promise<WriteBatchResult> {
    if (JSON.stringify(raw ?? null).length > WRITE_LIMITS.maxBatchBytes) {
      throw new WriteRequestError('too_large', `a write batch may take at most ${WRITE_LIMITS.maxBatchBytes} bytes as JSON`);
    }
    const parsed = WriteBatchSchema.safeParse(raw);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw new WriteRequestError('invalid_batch', `${issue.path.join('.') || 'batch'}: ${issue.message}`);
    }
    const { clientId } = parsed.data;
    const context = { clientId, tables: this.tables, now: (this.options.now ?? Date.now)(), maxClockSkewMs: this.options.maxClockSkewMs };
    const prepared = parsed.data.changes.map((change) => prepareChange(change, context));
    const refused = new Map<number, ChangeResult>();
    for (;;) {
      try {
        return { results: await this.attempt(userId, clientId, prepared, refused) };
      } catch (error) {
        if (!(error instanceof ChangeRefused)) throw error;
        refused.set(error.index, error.result);
      }
    }
  }

  private async attempt(
    userId: string,
    clientId: string,
    prepared: Array<PreparedChange | ChangeResult>,
    refused: Map<number, ChangeResult>,
  ): Promise<ChangeResult[]> {
    const writable = prepared.filter((change, index): change is PreparedChange => 'key' in change && !refused.has(index));
    const client = await this.pool.connect();
    try {
      // Foreign keys are deferrable (clients apply batches in any order); here a violation must
      // belong to the change that caused it, so it is checked per statement.
      await client.query('BEGIN; SET CONSTRAINTS ALL IMMEDIATE');
      const head = await client.query<{ xid: string; receipts: Receipt[]; workspaces: string[] }>(
        `SELECT set_config('walsync.client_id', $1, true),
                pg_logical_emit_message(true, '${CLIENT_MESSAGE_PREFIX}', $1),
                (pg_current_xact_id()::text::bigint % 4294967296)::text AS xid,
                (SELECT coalesce(json_agg(json_build_object('changeId', change_id, 'hash', request_hash, 'result', result, 'xid', transaction_id)), '[]')
                   FROM write_receipt WHERE change_id = ANY($2::uuid[])) AS receipts,
                (SELECT coalesce(array_agg(workspace_id::text), '{}') FROM workspace_member WHERE user_id = $3::uuid AND deleted_at IS NULL) AS workspaces`,
        [clientId, writable.map((change) => change.changeId), userId],
      );
      const { xid, workspaces } = head.rows[0]!;
      const receipts = new Map(head.rows[0]!.receipts.map((receipt) => [receipt.changeId, receipt]));
      const memberOf = new Set(workspaces);
      const rows = await this.lockRows(client, writable);

      const results: ChangeResult[] = [];
      const newReceipts: Receipt[] = [];
      const duplicates: Array<{ result: Applied; xid: string }> = [];
      for (const [index, change] of prepared.entries()) {
        const result = refused.get(index) ?? ('key' in change ? await this.applyOne(client, index, change, { clientId, memberOf, rows, receipts }) : change);
        results.push(result);
        if (!('key' in change) || refused.has(index)) continue;
        const receipt = receipts.get(change.changeId);
        if (receipt?.hash === change.hash) {
          if (result.status === 'applied') duplicates.push({ result, xid: receipt.xid });
        } else if (result.status !== 'error') {
          const stored: Receipt = { changeId: change.changeId, hash: change.hash, result, xid };
          newReceipts.push(stored);
          receipts.set(change.changeId, stored);
        }
      }
      if (newReceipts.length > 0) {
        await client.query(
          `INSERT INTO write_receipt (change_id, client_id, request_hash, result, transaction_id)
           SELECT "changeId", $2, hash, result, xid FROM json_to_recordset($1::json) AS x("changeId" uuid, hash text, result jsonb, xid text)`,
          [JSON.stringify(newReceipts.map(({ result, ...rest }) => ({ ...rest, result: withoutLsn(result) }))), clientId],
        );
      }
      await client.query('COMMIT');
      await this.fillLsns(client, results, duplicates);
      return results;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    } finally {
      client.release();
    }
  }

  /** The current rows of every key the batch touches, locked until commit. */
  private async lockRows(client: pg.PoolClient, changes: PreparedChange[]): Promise<Map<string, Row>> {
    const rows = new Map<string, Row>();
    const byTable = new Map<SyncedTable, PreparedChange[]>();
    for (const change of changes) byTable.set(change.table, [...(byTable.get(change.table) ?? []), change]);
    for (const [table, tableChanges] of byTable) {
      const columns = columnMap(table);
      const keyColumns = table.primaryKey.map(quoteIdent).join(', ');
      const arrays = table.primaryKey.map((name, position) => `$${position + 1}::${castOf(columns.get(name)!)}[]`).join(', ');
      const params = table.primaryKey.map((_, position) => tableChanges.map((change) => change.key[position]));
      const result = await client.query<{ row: Row }>(
        `SELECT to_jsonb(t.*) AS row FROM ${quoteIdent(table.name)} t WHERE (${keyColumns}) IN (SELECT * FROM unnest(${arrays})) FOR UPDATE OF t`,
        params,
      );
      for (const { row } of result.rows) rows.set(`${table.name}:${keyOf(table.primaryKey.map((name) => row[name]))}`, row);
    }
    return rows;
  }

  private async applyOne(
    client: pg.PoolClient,
    index: number,
    change: PreparedChange,
    state: { clientId: string; memberOf: Set<string>; rows: Map<string, Row>; receipts: Map<string, Receipt> },
  ): Promise<ChangeResult> {
    const { changeId, table } = change;
    const receipt = state.receipts.get(changeId);
    if (receipt) {
      if (receipt.hash !== change.hash) {
        return { changeId, status: 'error', code: 'replayed_change', message: `changeId ${changeId} was already used for a different change; every change needs its own id` };
      }
      return receipt.result.status === 'applied' ? { ...receipt.result, duplicate: true } : receipt.result;
    }

    const rowKey = `${table.name}:${keyOf(change.key)}`;
    const existing = state.rows.get(rowKey);
    const forbidden = (): ChangeResult => ({
      changeId,
      status: 'error',
      code: 'forbidden_scope',
      message: `${table.name} rows are writable only in workspaces you are a member of`,
    });
    const existingScope = existing?.[table.scope];
    if (existing && !state.memberOf.has(String(existingScope))) return forbidden();
    const scope = change.scope ?? (typeof existingScope === 'string' ? existingScope : undefined);
    if (scope !== undefined && !state.memberOf.has(scope)) return forbidden();

    if (!existing) {
      if (change.op === 'update') return { changeId, status: 'rejected', reason: 'not_found', message: `${table.name} ${keyOf(change.key)} does not exist on the server`, row: null };
      if (change.op === 'delete') return { changeId, status: 'applied', lsn: '', row: null };
    } else if (typeof existing.hlc === 'string' && existing.hlc >= change.hlc) {
      return { changeId, status: 'rejected', reason: 'stale', message: `the server holds a later write (hlc ${existing.hlc})`, row: existing };
    }

    const columns = columnMap(table);
    const params: unknown[] = [];
    const param = (value: unknown, cast: string) => {
      params.push(value);
      return `$${params.length}::${cast}`;
    };
    const keyMatch = table.primaryKey.map((name, position) => `${quoteIdent(name)} = ${param(change.key[position], castOf(columns.get(name)!))}`).join(' AND ');
    const sets = [...change.values].map(([name, value]) => `${quoteIdent(name)} = ${param(value, castOf(columns.get(name)!))}`);
    sets.push(`hlc = ${param(change.hlc, 'text')}`, `origin_client_id = ${param(state.clientId, 'text')}`);
    if (change.op === 'delete') sets.push('deleted_at = now()');
    if (change.op === 'insert') sets.push('deleted_at = NULL');

    let sql: string;
    if (existing) {
      sql = `UPDATE ${quoteIdent(table.name)} t SET ${sets.join(', ')} WHERE ${keyMatch} RETURNING to_jsonb(t.*) AS row`;
    } else {
      params.length = 0;
      const names = [...table.primaryKey, ...change.values.keys(), 'hlc', 'origin_client_id'];
      const values = [
        ...table.primaryKey.map((name, position) => param(change.key[position], castOf(columns.get(name)!))),
        ...[...change.values].map(([name, value]) => param(value, castOf(columns.get(name)!))),
        param(change.hlc, 'text'),
        param(state.clientId, 'text'),
      ];
      sql = `INSERT INTO ${quoteIdent(table.name)} AS t (${names.map(quoteIdent).join(', ')}) VALUES (${values.join(', ')}) RETURNING to_jsonb(t.*) AS row`;
    }
    try {
      const result = await client.query<{ row: Row }>(sql, params);
      const row = result.rows[0]!.row;
      state.rows.set(rowKey, row);
      return { changeId, status: 'applied', lsn: '', row };
    } catch (error) {
      throw new ChangeRefused(index, refusal(changeId, error, existing ?? null));
    }
  }

  /** An applied change commits at or before the WAL insert position read right after its commit. */
  private async fillLsns(client: pg.PoolClient, results: ChangeResult[], duplicates: Array<{ result: Applied; xid: string }>): Promise<void> {
    if (!results.some((result) => result.status === 'applied')) return;
    const xids = [...new Set(duplicates.map((duplicate) => duplicate.xid))];
    const lookup = await client.query<{ now: string; earlier: Record<string, string> }>(
      `SELECT pg_current_wal_insert_lsn()::text AS now,
              (SELECT coalesce(json_object_agg(transaction_id, lsn), '{}') FROM (
                 SELECT DISTINCT ON (transaction_id) transaction_id, lsn FROM change_history
                  WHERE transaction_id = ANY($1::text[]) ORDER BY transaction_id, commit_lsn DESC) found) AS earlier`,
      [xids],
    );
    const { now, earlier } = lookup.rows[0]!;
    for (const result of results) if (result.status === 'applied' && !result.lsn) result.lsn = now;
    for (const { result, xid } of duplicates) result.lsn = earlier[xid] ?? now;
  }
}

function withoutLsn(result: ChangeResult): ChangeResult {
  if (result.status !== 'applied') return result;
  const { lsn: _lsn, duplicate: _duplicate, ...rest } = result;
  return { ...rest, lsn: '' };
}

/** What the database's refusal means for the client: bad data is an error, a broken constraint a rejection. */
function refusal(changeId: string, error: unknown, row: Row | null): ChangeResult {
  const code = String((error as { code?: string }).code ?? '');
  const message = (error as Error).message;
  if (code.startsWith('23')) return { changeId, status: 'rejected', reason: 'constraint', message, row };
  if (code.startsWith('22')) return { changeId, status: 'error', code: 'invalid_value', message };
  throw error;
}
