import { useEffect, useState } from 'react';
import type { BrowserDb } from '../src/browser';

/**
 * Rows of a PGlite live query, re-rendered when the tables under it change (local writes, remote
 * applies, other tabs). `undefined` until the first result.
 */
export function useLiveQuery<T>(db: BrowserDb, sql: string, params: unknown[] = []): T[] | undefined {
  const [rows, setRows] = useState<T[]>();
  const key = JSON.stringify(params);
  useEffect(() => {
    let cancelled = false;
    let live = false;
    let unsubscribe: (() => Promise<void>) | undefined;
    // A plain query paints first: setting up a live query (a temporary view, triggers, LISTEN) takes
    // a few round trips to the leader's worker.
    void db.query<T>(sql, params).then((result) => !cancelled && !live && setRows(result.rows), () => undefined);
    void db.live
      .query<T>(sql, params, (result) => {
        live = true;
        if (!cancelled) setRows(result.rows);
      })
      .then((query) => {
        if (cancelled) void query.unsubscribe();
        else {
          live = true;
          unsubscribe = query.unsubscribe;
          setRows(query.initialResults.rows);
        }
      });
    return () => {
      cancelled = true;
      void unsubscribe?.();
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps -- params are compared by value (key)
  }, [db, sql, key]);
  return rows;
}
