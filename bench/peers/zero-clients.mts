/**
 * Zero's client in Node, as the bench runs it: `ws` as the WebSocket Node 20 lacks, the in-memory
 * store, or (for the client that goes away and comes back) Zero's own SQLite store over its own
 * SQLite binding, so the second instance resumes what the first one held.
 */
import { setMaxListeners } from 'node:events';
import { rmSync } from 'node:fs';
import path from 'node:path';
import Database from '@rocicorp/zero-sqlite3';
import { Zero } from '@rocicorp/zero';
import { SQLiteStore, dropStore, type SQLiteDatabase } from '@rocicorp/zero/sqlite';
import { WebSocket } from 'ws';
import { mutators, queries, schema } from './zero-app.mts';

(globalThis as { WebSocket?: unknown }).WebSocket ??= WebSocket;
// Zero's clients in one process add an abort listener each to a signal they share: Node warns past 10
// (a hundred times in a run). The bench runs up to 100 clients in a process on purpose.
setMaxListeners(200);

export { mutators, queries };

/** Zero's SQLite key-value store on the zero-sqlite3 binding (the same shape as its op-sqlite one). */
function fileDatabase(filename: string): SQLiteDatabase {
  const db = new Database(filename);
  return {
    close: () => db.close(),
    destroy: () => rmSync(filename, { force: true }),
    prepare(sql) {
      const statement = db.prepare(sql);
      return {
        exec: async (params) => void statement.run(...params),
        all: async (params) => statement.raw(true).all(...params) as unknown[][],
      };
    },
    execSync: (sql) => void db.exec(sql),
  };
}

function fileStore(directory: string) {
  const create = (name: string) => fileDatabase(path.isAbsolute(name) ? name : path.join(directory, name));
  return {
    create: (name: string) => new SQLiteStore(name, create, { directory }),
    drop: (name: string) => dropStore(name, create, { directory }),
  };
}

export type BenchZero = Zero<typeof schema>;

/** A Zero client of `user` (its token is the user id; the bench's query/mutate endpoint takes it as is). */
export function zeroClient(cacheURL: string, user: string, storeDirectory?: string): BenchZero {
  return new Zero({
    cacheURL,
    userID: user,
    auth: user,
    schema,
    mutators,
    kvStore: storeDirectory ? fileStore(storeDirectory) : 'mem',
    logLevel: 'error',
  });
}

/** Resolves when `has(rows)` holds for the workspace's tasks as `zero` sees them, and stops watching. */
export function watchTasks(zero: BenchZero, workspaceId: string) {
  const view = zero.materialize(queries.workspaceTasks({ workspaceId }));
  type Rows = readonly { readonly id: string; readonly title: string }[];
  let latest: { rows: Rows; complete: boolean } = { rows: view.data as Rows, complete: false };
  const waiters = new Set<{ test: (rows: Rows, complete: boolean) => boolean; resolve: (at: number) => void }>();
  view.addListener((rows, resultType) => {
    const at = performance.now();
    latest = { rows: rows as Rows, complete: resultType === 'complete' };
    for (const waiter of waiters) {
      if (!waiter.test(latest.rows, latest.complete)) continue;
      waiters.delete(waiter);
      waiter.resolve(at);
    }
  });
  return {
    /** When `test` first holds (at once if it already does), on performance.now()'s clock. */
    until(test: (rows: Rows, complete: boolean) => boolean): Promise<number> {
      if (test(latest.rows, latest.complete)) return Promise.resolve(performance.now());
      return new Promise((resolve) => waiters.add({ test, resolve }));
    },
    destroy: () => view.destroy(),
  };
}
