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
    let unsubscribe: (() => Promise<void>) | undefined;
    void db.live.query<T>(sql, params, (result) => !cancelled && setRows(result.rows)).then((live) => {
      if (cancelled) void live.unsubscribe();
      else {
        unsubscribe = live.unsubscribe;
        setRows(live.initialResults.rows);
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
