import { ROWS_LIMITS, RowsRequestSchema, type SubscriptionDefinition, type SyncedTable, formatIssues, quoteIdent } from '@walsync/db/server';
import { Scope } from '../auth/scope';
import { ClientView } from './client-view';
import { type Snapshots, selectedTables } from './snapshot';

/** Why a read is refused: nothing was read. */
export class RowsReadError extends Error {
  constructor(
    readonly code: 'invalid_request' | 'unknown_subscription' | 'invalid_params' | 'forbidden' | 'too_large',
    message: string,
  ) {
    super(message);
  }
}

/**
 * `POST /rows`: the rows a client would hold, read once — the user's whole scope, or (with
 * `subscriptions`) the tables every client holds whole and the rows those subscriptions select —
 * for a page to paint while its new replica hydrates. The same selection, checks and admission as a
 * snapshot: a subscription outside the user's workspaces is refused as the socket refuses it, and a
 * read takes one of the user's snapshot places, so no user's reads hold what others need. It has no
 * position: a replica never stores what it answers.
 *
 * @example
 *   const json = await reader.read(userId, request.body, () => request.socket.destroyed);
 */
export class RowsReader {
  constructor(
    private readonly snapshots: Snapshots,
    private readonly tables: () => SyncedTable[],
    private readonly definitions: readonly SubscriptionDefinition[],
  ) {}

  /** The answer as JSON text (`{"tables":{...}}`, each table's rows spliced in as Postgres wrote them), or undefined when the caller went away while it waited. */
  async read(userId: string, body: unknown, abandoned: () => boolean): Promise<string | undefined> {
    const parsed = RowsRequestSchema.safeParse(body ?? {});
    if (!parsed.success) throw new RowsReadError('invalid_request', formatIssues(parsed.error, 'request'));
    const { subscriptions } = parsed.data;
    const tables = this.tables();
    const read = await this.snapshots.read(userId, abandoned, async (client) => {
      // One snapshot for the scope, the checks and the rows: the answer is one consistent view.
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      try {
        const scope = await Scope.of(client, userId);
        const view = new ClientView(this.definitions, subscriptions !== undefined);
        for (const ref of subscriptions ?? []) {
          const result = await view.subscribe(client, scope, tables, ref);
          if ('refusal' in result) throw new RowsReadError(result.refusal.code, result.refusal.message);
        }
        const selected = selectedTables(tables, view.selection(tables, [...scope.workspaces]));
        let total = 0;
        for (const { table, where, params } of selected) {
          total += (await client.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${quoteIdent(table.name)} WHERE ${where}`, params)).rows[0]!.n;
          if (total > ROWS_LIMITS.maxRows) throw new RowsReadError('too_large', `a read answers at most ${ROWS_LIMITS.maxRows} rows; name fewer subscriptions (or let the replica hydrate)`);
        }
        const parts: string[] = [];
        for (const { table, where, params } of selected) {
          const rows = await client.query<{ rows: string }>(`SELECT coalesce(json_agg(row_to_json(t.*)), '[]')::text AS rows FROM ${quoteIdent(table.name)} t WHERE ${where}`, params);
          parts.push(`${JSON.stringify(table.name)}:${rows.rows[0]!.rows}`);
        }
        return `{"tables":{${parts.join(',')}}}`;
      } finally {
        await client.query('ROLLBACK').catch(() => undefined);
      }
    });
    return read?.value;
  }
}
