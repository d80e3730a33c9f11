import { useLiveQuery as usePGliteLiveQuery } from '@electric-sql/pglite-react';
import type { SyncEvents, SyncStatus } from '@walsync/web';
import { useEffect, useRef, useState } from 'react';
import { useLastResults, useSyncClient } from './provider';

/**
 * The rows of a live query, re-rendered when the tables under it change (local writes, the
 * server's changes, other tabs). `undefined` until the first result. Params are compared by value.
 *
 * A live query takes a few round trips to set up (in the browser, to the leader tab's worker); a
 * plain query of the same SQL paints the first rows meanwhile. Under a provider with `lastResults`,
 * the rows this query showed last time come first, until the replica answers.
 *
 * @example
 *   const open = useLiveQuery<{ id: string; title: string }>(`SELECT id, title FROM task WHERE status = $1`, ['todo']);
 */
export function useLiveQuery<T = Record<string, unknown>>(sql: string, params: unknown[] = []): T[] | undefined {
  const client = useSyncClient();
  const last = useLastResults();
  const key = JSON.stringify(params);
  // pglite-react re-subscribes when the params array changes identity: keep one per value.
  const stable = useStable(params, key);
  const live = usePGliteLiveQuery<T>(sql, stable);
  const [first, setFirst] = useState<{ key: string; rows: T[] }>();
  useEffect(() => {
    let cancelled = false;
    void client.db.query<T>(sql, stable).then(
      (result) => !cancelled && setFirst({ key: sql + key, rows: result.rows }),
      () => undefined,
    );
    return () => {
      cancelled = true;
    };
  }, [client, sql, key, stable]);
  const rows = live ? live.rows : first?.key === sql + key ? first.rows : undefined;
  const lastKey = `${sql}\u0000${key}`;
  useEffect(() => {
    if (rows) last?.set(lastKey, rows);
  }, [last, rows, lastKey]);
  return rows ?? last?.get<T>(lastKey);
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
