/**
 * The leader tab's statements to its own worker, one message each way (see DirectQuery in
 * ./worker.ts), where PGliteWorker takes several round trips per statement: queries, transactions
 * step by step, and live queries run beside the replica.
 */
import type { QueryOptions, Transaction } from '@electric-sql/pglite';
import type { LiveQuery, LiveQueryResults } from '@electric-sql/pglite/live';
import type { DirectLive, DirectQuery, DirectStep } from './worker';

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** A reply of the worker: to a statement (`walsync:result`) or new rows of a live query (`walsync:live-rows`). */
export interface WorkerReply {
  type?: string;
  id?: number;
  result?: never;
  error?: { message?: unknown };
  results?: LiveQueryResults<unknown>;
}

/** Query options a message can carry (paramTypes, rowMode); parsers, serializers and blobs cannot. */
export function crossesAsData(options: QueryOptions | undefined): boolean {
  if (options === undefined) return true;
  return Object.entries(options).every(([name, value]) => value === undefined || name === 'paramTypes' || name === 'rowMode');
}

/** A statement sent to the leader's worker, waiting for its reply. */
export interface PendingReply {
  resolve: (result: never) => void;
  reject: (error: Error) => void;
}

/** Settles the statement `id` of `pending` with the worker's reply: its result, or its error with Postgres' fields. */
export function answerReply<K>(pending: Map<K, PendingReply>, id: K, reply: { result?: unknown; error?: { message?: unknown } }): void {
  const waiting = pending.get(id);
  pending.delete(id);
  if (reply.error) waiting?.reject(Object.assign(new Error(String(reply.error.message)), reply.error));
  else waiting?.resolve(reply.result as never);
}

/** LISTEN inside a transaction, as PGliteWorker runs it (it keeps the listener and delivers the notices). */
type Listen = (channel: string, listener: (payload: string) => void, tx: Transaction) => Promise<unknown>;

/**
 * This tab's worker, asked directly: each statement is a message with an id, answered by one reply.
 *
 * @example
 *   const own = new OwnWorker(worker, db.listen.bind(db));
 *   worker.addEventListener('message', (event) => own.receive(event.data));
 *   const { rows } = await own.query({ sql: 'SELECT 1' });
 */
export class OwnWorker {
  private nextId = 0;
  /** Statements waiting for the worker's reply, by id. */
  private readonly replies = new Map<number, PendingReply>();
  /** The callbacks of the live queries in the worker, by id. */
  private readonly lives = new Map<number, (results: LiveQueryResults<unknown>) => void>();

  constructor(
    private readonly worker: Worker,
    private readonly listen: Listen,
  ) {}

  /** Settles what `reply` answers (any other message is not for this). */
  receive(reply: WorkerReply | undefined): void {
    if (reply?.type === 'walsync:result') answerReply(this.replies, reply.id!, reply);
    if (reply?.type === 'walsync:live-rows') this.lives.get(reply.id!)?.(reply.results!);
  }

  /** One statement (`exec`: several, without parameters). */
  query(message: { sql: string; params?: unknown[]; options?: QueryOptions; exec?: boolean }): Promise<never> {
    return this.direct({ type: 'walsync:query', ...message });
  }

  private direct(message: Omit<DirectQuery, 'id'> | Omit<DirectStep, 'id'> | DistributiveOmit<DirectLive, 'id'>, id = ++this.nextId): Promise<never> {
    return new Promise((resolve, reject) => {
      this.replies.set(id, { resolve, reject });
      this.worker.postMessage({ ...message, id });
    });
  }

  /** A live query run by the worker: its first rows, then every new result to `callback` (and to those `subscribe` adds). */
  async live(sql: string, params: unknown[] | undefined, callback: ((results: LiveQueryResults<unknown>) => void) | undefined): Promise<LiveQuery<unknown>> {
    const id = ++this.nextId;
    const callbacks = new Set(callback ? [callback] : []);
    this.lives.set(id, (results) => {
      for (const each of callbacks) each(results);
    });
    let stopped: Promise<void> | undefined;
    const stop = () => {
      this.lives.delete(id);
      return (stopped ??= this.direct({ type: 'walsync:live-stop', live: id }));
    };
    try {
      const initialResults = (await this.direct({ type: 'walsync:live', sql, params }, id)) as LiveQueryResults<unknown>;
      const query: LiveQuery<unknown> = {
        initialResults,
        subscribe: (each) => void callbacks.add(each),
        unsubscribe: async (each) => {
          if (each) callbacks.delete(each);
          if (!each || callbacks.size === 0) await stop();
        },
        refresh: () => this.direct({ type: 'walsync:live-refresh', live: id }),
      };
      return query;
    } catch (error) {
      this.lives.delete(id);
      throw error;
    }
  }

  /** A transaction run by the worker, its statements sent one message each. */
  async transaction<T>(callback: (tx: Transaction) => Promise<T>): Promise<T> {
    // The transaction is known by its `begin` step's id.
    const id = ++this.nextId;
    await this.direct({ type: 'walsync:tx', tx: id, step: 'begin' }, id);
    let closed = false;
    const step = (kind: DirectStep['step'], sql?: string, params?: unknown[], options?: QueryOptions) =>
      this.direct({ type: 'walsync:tx', tx: id, step: kind, sql, params, options });
    const tx = {
      query: (sql: string, params?: unknown[], options?: QueryOptions) => {
        if (!crossesAsData(options)) throw new TypeError('in the leader tab, a transaction takes query options that are data only (paramTypes, rowMode), not parsers or blobs');
        return step('query', sql, params, options);
      },
      exec: (sql: string) => step('exec', sql),
      sql: (strings: TemplateStringsArray, ...values: unknown[]) => step('query', strings.reduce((text, part, index) => `${text}$${index}${part}`), values),
      rollback: async () => {
        closed = true;
        await step('rollback');
      },
      // LISTEN runs in the transaction; PGliteWorker keeps the listener and delivers the notices.
      listen: (channel: string, listener: (payload: string) => void) => this.listen(channel, listener, tx),
      get closed() {
        return closed;
      },
    } as unknown as Transaction;
    try {
      const result = await callback(tx);
      if (!closed) {
        closed = true;
        await step('commit');
      }
      return result;
    } catch (error) {
      if (!closed) {
        closed = true;
        await step('rollback').catch(() => undefined);
      }
      throw error;
    }
  }
}
