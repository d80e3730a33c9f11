import type { Transaction } from '@electric-sql/pglite';
import { type Row, type SubscriptionDefinition, type SubscriptionRef, type SyncedTable, checkSubscription, quoteIdent as quote, quoteLiteral as literal } from '@walsync/db/browser';

/**
 * The SQL over a replica's rows that its subscriptions decide: which rows a set of subscriptions
 * selects (the same rules the server routes by, see ClientView), and removing what none selects.
 */
export class SubscriptionRows {
  constructor(
    private readonly definitions: readonly SubscriptionDefinition[],
    private readonly tables: SyncedTable[],
  ) {}

  /** `alias`'s row (of `table`) is selected by one of `held`, as SQL. */
  private selectedSql(table: string, alias: string, held: SubscriptionRef[]): string {
    const byColumn = new Map<string, string[]>();
    for (const ref of held) {
      const definition = this.definitions.find((each) => each.name === ref.name);
      const rule = definition?.tables[table];
      if (!rule) continue;
      byColumn.set(rule.column, [...(byColumn.get(rule.column) ?? []), String(ref.params[rule.param])]);
    }
    const any = [...byColumn].map(([column, values]) => `${alias}.${quote(column)}::text IN (${values.map(literal).join(', ')})`);
    return any.length > 0 ? `(${any.join(' OR ')})` : 'false';
  }

  private pendingWrite(table: SyncedTable, alias: string): string {
    const key = `jsonb_build_object(${table.primaryKey.map((name) => `'${name}', ${alias}.${quote(name)}`).join(', ')})`;
    return `EXISTS (SELECT 1 FROM walsync_outbox o WHERE o.table_name = ${literal(table.name)} AND o.pk = ${key})`;
  }

  /** The tables some subscription names, children first. */
  private subscribedTables(): SyncedTable[] {
    const named = new Set(this.definitions.flatMap((definition) => Object.keys(definition.tables)));
    return [...this.tables].reverse().filter((table) => named.has(table.name));
  }

  /**
   * Removes the rows `removed` selected that none of `remaining` does, except rows with unsent
   * local writes (their answers settle them, then `dropUnselected` takes them).
   */
  async removeOnly(tx: Transaction, removed: SubscriptionRef, remaining: SubscriptionRef[]): Promise<void> {
    for (const table of this.subscribedTables()) {
      const mine = this.selectedSql(table.name, 't', [removed]);
      if (mine === 'false') continue;
      await tx.exec(`DELETE FROM ${quote(table.name)} t WHERE ${mine} AND NOT ${this.selectedSql(table.name, 't', remaining)} AND NOT ${this.pendingWrite(table, 't')}`);
    }
  }

  /**
   * Rows of answered writes that no subscription selects, neither as the replica holds them nor as
   * the server answered them, and that no unsent write holds: a write outside the subscriptions,
   * settled. The server's row counts too: a replica's comment takes its project from the replica's
   * task, which may still carry a move of this client's that the server overruled (the task's answer
   * waits for its next unsent write), and the stream never sends this client its own comment again.
   */
  async dropUnselected(tx: Transaction, answers: Array<{ table: string; pk: Record<string, unknown>; row: Row | null }>, held: SubscriptionRef[]): Promise<void> {
    for (const table of this.subscribedTables()) {
      const answered = answers.filter((answer) => answer.table === table.name).map(({ pk, row }) => ({ pk, row }));
      if (answered.length === 0) continue;
      const key = `jsonb_build_object(${table.primaryKey.map((name) => `'${name}', t.${quote(name)}::text`).join(', ')})`;
      const answeredKey = `jsonb_build_object(${table.primaryKey.map((name) => `'${name}', a -> 'pk' ->> '${name}'`).join(', ')})`;
      const serverSelected = `(SELECT ${this.selectedSql(table.name, 'r', held)} FROM jsonb_populate_record(NULL::${quote(table.name)}, nullif(a -> 'row', 'null')) r)`;
      await tx.query(
        `DELETE FROM ${quote(table.name)} t
          WHERE ${key} IN (SELECT ${answeredKey} FROM jsonb_array_elements($1::jsonb) a WHERE NOT coalesce(${serverSelected}, false))
            AND NOT ${this.selectedSql(table.name, 't', held)} AND NOT ${this.pendingWrite(table, 't')}`,
        [JSON.stringify(answered)],
      );
    }
  }

  /** A subscription checked against the definitions this build has (normalised), or why not. */
  check(ref: SubscriptionRef): { key: string; ref: SubscriptionRef } | { problem: string } {
    const checked = checkSubscription(this.definitions, ref);
    return checked.ok ? { key: checked.key, ref: checked.ref } : { problem: checked.message };
  }
}
