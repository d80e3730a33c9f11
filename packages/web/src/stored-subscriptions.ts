import type { PGlite, Transaction } from '@electric-sql/pglite';
import type { SubscriptionDefinition, SubscriptionRef, SyncedTable } from '@walsync/db/browser';
import { readState, setState } from './local-schema';
import { SubscriptionRows } from './subscription-rows';
import { SyncClientError } from './types';

/** A subscription as the replica stores it. `pending`: asked for, its rows not (all) here yet; `leaving`: unsubscribed, the server's answer not yet here. */
export interface StoredSubscription {
  key: string;
  ref: SubscriptionRef;
  state: 'pending' | 'ready' | 'leaving';
}

export const SUBSCRIPTION_TABLE_SQL = `CREATE TABLE IF NOT EXISTS walsync_subscription (key text PRIMARY KEY, name text NOT NULL, params jsonb NOT NULL, state text NOT NULL, added_at timestamptz NOT NULL DEFAULT now())`;

/**
 * The subscriptions a replica stores (`walsync_subscription`), each `pending`, `ready` or `leaving`,
 * and whether it holds subscriptions only: what the client asks the server for, and what it keeps.
 * Removing one removes the rows only it selected, in the same transaction.
 *
 * @example
 *   const subscriptions = new StoredSubscriptions(db, definitions, tables);
 *   await subscriptions.open([{ name: 'project', params: { projectId } }], true);
 *   await subscriptions.remove(key);
 */
export class StoredSubscriptions {
  /** The SQL over the replica's rows that the subscriptions decide. */
  readonly rows: SubscriptionRows;
  /** The replica holds subscriptions only (not its whole scope): decided when it is made, stored with it. */
  partial = false;

  constructor(
    private readonly db: PGlite,
    definitions: readonly SubscriptionDefinition[],
    tables: SyncedTable[],
  ) {
    this.rows = new SubscriptionRows(definitions, tables);
  }

  /**
   * Whether the replica holds subscriptions only, and which. A new replica holds subscriptions when
   * `requested` is given (else its whole scope), and that stays with it; requested subscriptions it
   * does not hold yet are added (pending). Throws `invalid_subscription` for subscriptions a replica
   * that holds its whole scope was opened with, or that no definition allows.
   */
  async open(requested: SubscriptionRef[] | undefined, fresh: boolean): Promise<StoredSubscription[]> {
    const mode = await readState(this.db, 'mode');
    if (mode === 'whole' && requested) {
      throw new SyncClientError('invalid_subscription', 'this replica holds its whole scope (it was made without subscriptions); open a new dataDir to hold subscriptions only');
    }
    this.partial = mode === 'subscriptions' || (mode === null && requested !== undefined);
    if (mode === null && (fresh || requested)) await setState(this.db, 'mode', this.partial ? 'subscriptions' : 'whole');
    for (const ref of requested ?? []) {
      const checked = this.rows.check(ref);
      if ('problem' in checked) throw new SyncClientError('invalid_subscription', checked.problem);
      await this.add(checked.key, checked.ref);
    }
    return this.list();
  }

  /** Every stored subscription, oldest first. */
  async list(db: PGlite | Transaction = this.db): Promise<StoredSubscription[]> {
    const result = await db.query<StoredSubscription & { name: string; params: SubscriptionRef['params'] }>(`SELECT key, name, params, state FROM walsync_subscription ORDER BY added_at, key`);
    return result.rows.map((row) => ({ key: row.key, ref: { name: row.name, params: row.params }, state: row.state }));
  }

  /** Stores a subscription as pending (a leaving one is wanted again); returns its state. */
  async add(key: string, ref: SubscriptionRef): Promise<StoredSubscription['state']> {
    const result = await this.db.query<{ state: StoredSubscription['state'] }>(
      `INSERT INTO walsync_subscription (key, name, params, state) VALUES ($1, $2, $3, 'pending')
         ON CONFLICT (key) DO UPDATE SET state = CASE WHEN walsync_subscription.state = 'leaving' THEN 'pending' ELSE walsync_subscription.state END
         RETURNING state`,
      [key, ref.name, JSON.stringify(ref.params)],
    );
    return result.rows[0]!.state;
  }

  /** An unsubscribe is on its way to the server; false when the replica does not hold the subscription. */
  async markLeaving(key: string): Promise<boolean> {
    return ((await this.db.query(`UPDATE walsync_subscription SET state = 'leaving' WHERE key = $1`, [key])).affectedRows ?? 0) > 0;
  }

  /**
   * Forgets a subscription and removes the rows only it selected (rows with unsent writes stay until
   * their answers settle them). `ifLeaving`: only when it is still leaving (not wanted again meanwhile).
   */
  async remove(key: string, options: { ifLeaving?: boolean } = {}): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      await tx.exec(`SET LOCAL walsync.applying = 'on'`);
      const removed = await tx.query<{ name: string; params: SubscriptionRef['params'] }>(
        `DELETE FROM walsync_subscription WHERE key = $1 ${options.ifLeaving ? `AND state = 'leaving'` : ''} RETURNING name, params`,
        [key],
      );
      const ref = removed.rows[0];
      if (!ref) return false;
      const remaining = await tx.query<{ name: string; params: SubscriptionRef['params'] }>(`SELECT name, params FROM walsync_subscription`);
      await this.rows.removeOnly(tx, ref, remaining.rows);
      return true;
    });
  }

  /** Removes the rows only `pending` subscriptions select (none of `held` does), except rows with unsent writes. */
  async dropUnhydrated(pending: SubscriptionRef[], held: SubscriptionRef[]): Promise<void> {
    await this.db.transaction(async (tx) => {
      await tx.exec(`SET LOCAL walsync.applying = 'on'`);
      for (const ref of pending) await this.rows.removeOnly(tx, ref, held);
    });
  }
}
