import type { StreamChange } from '../protocol/sync';

type Row = Record<string, unknown>;

/** A row's identity in a table with `primaryKey`: its key's values, as one string. */
export function rowKey(primaryKey: readonly string[], row: Row): string {
  return JSON.stringify(primaryKey.map((column) => row[column]));
}

/**
 * One row per primary key, as applying the rows one after another would leave it: a row never
 * replaces a newer version, so the newest wins, the later on a tie. A replica applies a run of
 * upserts as one statement, which may touch a row only once.
 */
export function latestPerKey<R extends Row>(primaryKey: readonly string[], rows: R[]): R[] {
  if (rows.length === 1) return rows;
  const byKey = new Map<string, R>();
  for (const row of rows) {
    const key = rowKey(primaryKey, row);
    const kept = byKey.get(key);
    if (!kept || !(Number(kept.version) > Number(row.version))) byKey.set(key, row);
  }
  return [...byKey.values()];
}

/**
 * A changes batch as a replica applies it: each run of consecutive inserts and updates of one
 * table keeps one change per row (`latestPerKey`), at the place of the one kept; deletes,
 * truncates and other tables end a run and stay where they are. The server sends a catch-up batch
 * so (a row updated 10 times while the client was away goes once); the replica reduces what it
 * gets the same way, so the result is the same either way.
 */
export function collapseRuns(changes: StreamChange[], primaryKey: (table: string) => readonly string[] | undefined): StreamChange[] {
  const result: StreamChange[] = [];
  let run: StreamChange[] = [];
  const endRun = () => {
    const key = run[0] && primaryKey(run[0].table);
    if (key && run.length > 1) {
      const latest = latestPerKey(key, run.map((change) => change.data as Row));
      if (latest.length < run.length) {
        const kept = new Set(latest);
        run = run.filter((change) => kept.has(change.data as Row));
      }
    }
    // Not push(...run): a run may hold more rows than a call takes arguments (a 150,000-row transaction).
    for (const change of run) result.push(change);
    run = [];
  };
  for (const change of changes) {
    const upsert = (change.op === 'insert' || change.op === 'update') && change.data !== undefined;
    if (!upsert || (run[0] && run[0].table !== change.table)) endRun();
    if (upsert) run.push(change);
    else result.push(change);
  }
  endRun();
  return result;
}
