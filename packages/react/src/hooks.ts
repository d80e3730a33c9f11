import type { SubscriptionInput, SubscriptionParamsOf, SyncEvents, SyncStatus } from '@walsync/web';
import { useCallback, useEffect, useMemo, useRef, useState } from 'react';
import { useLastResults, useQueryOrder, useSyncClient } from './provider';

/**
 * The rows of a live query, re-rendered when the tables under it change (local writes, the
 * server's changes, other tabs). `undefined` until the first result. Params are compared by value.
 *
 * A live query takes a few round trips to set up (in the browser, to the leader tab's worker, and
 * PGlite makes a temporary view and triggers for it: tens of ms at a cold start); a plain query of
 * the same SQL paints the first rows, and the live query is set up once the page's first queries
 * are answered (so a setup never keeps a first card back). Under a provider with `lastResults`, the rows this
 * query showed last time come first, until the replica answers. A query that fails is reported on
 * the console (with its SQL) and stays `undefined`.
 *
 * `placeholder`: rows to show while the replica cannot answer yet — a first paint made from rows
 * read once from the server (`readRows`) while a new replica starts, gets its schema and hydrates.
 * While it is given the query is not sent (a new replica may not have its tables yet); pass
 * `undefined` once the replica holds what it reads (`ready`, or the subscription's `ready`), and the
 * placeholder stays on screen until the replica's rows come.
 *
 * @example
 *   const open = useLiveQuery<{ id: string; title: string }>(`SELECT id, title FROM task WHERE status = $1`, ['todo']);
 */
export function useLiveQuery<T = Record<string, unknown>>(sql: string, params: unknown[] = [], options: LiveQueryOptions<T> = {}): T[] | undefined {
  const client = useSyncClient();
  const last = useLastResults();
  const order = useQueryOrder();
  const key = `${sql}\u0000${JSON.stringify(params)}`;
  const stable = useStable(params, key);
  const [result, setResult] = useState<{ key: string; rows: T[]; live: boolean }>();
  // The query whose plain answer came (or failed): its live query may start.
  const [answered, setAnswered] = useState<string>();
  const failed = useCallback((error: Error) => console.error(`@walsync/react: the live query failed: ${error.message}\n${sql}`), [sql]);
  const waiting = options.placeholder !== undefined;
  const placeholder = useRef<T[]>(undefined);
  if (options.placeholder) placeholder.current = options.placeholder;
  useEffect(() => {
    if (waiting) return;
    let cancelled = false;
    order.first(() => client.db.query<T>(sql, stable)).then(
      (answer) => {
        if (cancelled) return;
        setResult((current) => (current?.key === key && current.live ? current : { key, rows: answer.rows, live: false }));
        setAnswered(key);
      },
      (error: Error) => {
        if (cancelled) return;
        failed(error);
        setAnswered(key);
      },
    );
    return () => {
      cancelled = true;
    };
  }, [client, order, sql, key, stable, failed, waiting]);
  // Set up once the page's first queries are answered (QueryOrder): theirs are not kept behind it.
  const start = answered === key;
  useEffect(() => {
    if (!start) return;
    let cancelled = false;
    let stop: (() => Promise<void>) | undefined;
    const show = (answer: { rows: T[] }) => !cancelled && setResult({ key, rows: answer.rows, live: true });
    order
      .quiet()
      .then(() => (cancelled ? undefined : client.db.live.query<T>(sql, stable, show)))
      .then(
        (query) => {
          if (!query) return;
          if (cancelled) return void query.unsubscribe();
          stop = () => query.unsubscribe();
          show(query.initialResults);
        },
        (error: Error) => !cancelled && failed(error),
      );
    return () => {
      cancelled = true;
      void stop?.();
    };
  }, [client, order, sql, key, stable, start, failed]);
  // New params show the rows of the old ones until theirs come (a page grown by scrolling does not blink empty).
  const current = result?.key === key ? result.rows : undefined;
  useEffect(() => {
    if (current) last?.set(key, current);
  }, [last, current, key]);
  return options.placeholder ?? current ?? result?.rows ?? last?.get<T>(key) ?? placeholder.current;
}

export interface LiveQueryOptions<T> {
  /** Shown instead of the replica's rows while given (see `useLiveQuery`). */
  placeholder?: T[];
}

function useStable<T>(value: T, key: string): T {
  const ref = useRef({ key, value });
  if (ref.current.key !== key) ref.current = { key, value };
  return ref.current.value;
}

/** The client's status, re-rendered when it changes. */
export function useSyncStatus(): SyncStatus {
  const client = useSyncClient();
  const [status, setStatus] = useState(client.status);
  useEffect(() => {
    setStatus(client.status);
    return client.on('status', setStatus);
  }, [client]);
  return status;
}

/** How many local writes wait for the server's answer (0 once everything is pushed and answered). */
export function usePendingCount(): number {
  const rows = useLiveQuery<{ n: number }>(`SELECT count(*)::int AS n FROM walsync_outbox WHERE last_error IS NULL`);
  return rows?.[0]?.n ?? 0;
}

/**
 * Calls `listener` for each `event` of the client while the component is mounted (the latest
 * `listener` is called; it need not be memoised).
 *
 * @example
 *   useSyncEvent('bootstrap:progress', ({ sent, total }) => setProgress(sent / total));
 */
export function useSyncEvent<K extends keyof SyncEvents>(event: K, listener: (...args: SyncEvents[K]) => void): void {
  const client = useSyncClient();
  const latest = useRef(listener);
  latest.current = listener;
  useEffect(() => client.on(event, (...args) => latest.current(...args)), [client, event]);
}

/** How long a write's optimistic rows wait for the live query to re-read them (a write that changes none of its rows). */
const REREAD_WAIT_MS = 1_000;

/** A write shown before the live query has it; `ran` holds the live rows it was committed beside. */
interface ShownWrite<T, A> {
  action: A;
  ran?: { rows: T[] | undefined };
}

/**
 * A live query that shows the app's own writes in the frame they are made. `write(action, run)`
 * shows `apply(rows, action)` at once (in the render of the event that wrote, not in a later one),
 * runs `run` (the SQL), and keeps showing the action until the live query re-reads the tables after
 * it; the live rows, which hold the write, take over in that same render. With a `placeholder`
 * (see `useLiveQuery`) the actions are shown on top of it, and a write waits for the replica. Changes that arrive
 * meanwhile are shown with the action on top, so `apply` must also accept rows that already hold
 * it. `write` resolves once `run` did (the write is in the replica); if `run` fails, the action is
 * taken back and `write` rejects with the error.
 *
 * @example
 *   const { rows, write } = useOptimisticLiveQuery<Task, Task>(`SELECT * FROM task ORDER BY position`, [], (rows, task) => [task, ...rows.filter((row) => row.id !== task.id)]);
 *   const add = (title: string) => {
 *     const task = { id: crypto.randomUUID(), title, position: 0 };
 *     return write(task, () => db.query(`INSERT INTO task (id, title, position) VALUES ($1, $2, $3)`, [task.id, task.title, task.position]));
 *   };
 */
export function useOptimisticLiveQuery<T, A>(
  sql: string,
  params: unknown[],
  apply: (rows: T[], action: A) => T[],
  options: LiveQueryOptions<T> = {},
): { rows: T[] | undefined; write(action: A, run: () => Promise<unknown>): Promise<void> } {
  const live = useLiveQuery<T>(sql, params, options);
  const current = useRef(live);
  current.current = live;
  const [writes, setWrites] = useState<Array<ShownWrite<T, A>>>([]);
  // A write that ran is shown until the live rows change after it: then they hold it.
  const shown = (write: ShownWrite<T, A>) => !write.ran || write.ran.rows === live;
  const rows = useMemo(() => (live ? writes.filter(shown).reduce((rows, write) => apply(rows, write.action), live) : live), [live, writes, apply]);
  useEffect(() => setWrites((all) => (all.every(shown) ? all : all.filter(shown))), [live]);
  const write = useCallback((action: A, run: () => Promise<unknown>) => {
    const entry: ShownWrite<T, A> = { action };
    const drop = (write: ShownWrite<T, A>) => setWrites((all) => all.filter((each) => each !== write));
    setWrites((all) => [...all, entry]);
    return run().then(
      () => {
        const ran = { ...entry, ran: { rows: current.current } };
        setWrites((all) => all.map((each) => (each === entry ? ran : each)));
        setTimeout(() => drop(ran), REREAD_WAIT_MS);
      },
      (error: unknown) => {
        drop(entry);
        throw error;
      },
    );
  }, []);
  return { rows, write };
}

/**
 * Holds a subscription (a client made with `subscriptions`) while the component shows it: `ready`
 * once its rows are in the replica (at once for one the replica holds already), `error` when it
 * cannot be held. The replica keeps the subscription after the component goes (a reopened client
 * resumes it, offline too); `client.unsubscribe(name, params)` lets it go. `params` undefined: none.
 *
 * @example
 *   const { ready } = useSubscription('project', projectId ? { projectId } : undefined);
 */
export function useSubscription<N extends SubscriptionInput['name']>(name: N, params: SubscriptionParamsOf<N> | undefined): { ready: boolean; error: Error | undefined } {
  const client = useSyncClient();
  const key = params === undefined ? undefined : JSON.stringify([name, params]);
  const [state, setState] = useState<{ key: string | undefined; ready: boolean; error?: Error }>({ key: undefined, ready: false });
  useEffect(() => {
    if (key === undefined) return;
    let cancelled = false;
    setState({ key, ready: false });
    client.subscribe(name, JSON.parse(key)[1]).ready.then(
      () => !cancelled && setState({ key, ready: true }),
      (error: Error) => !cancelled && setState({ key, ready: false, error }),
    );
    return () => {
      cancelled = true;
    };
  }, [client, name, key]);
  return state.key === key ? { ready: state.ready, error: state.error } : { ready: false, error: undefined };
}
