import { mkdirSync } from 'node:fs';
import { PGlite } from '@electric-sql/pglite';
import { lock } from 'proper-lockfile';
import { WebSocket } from 'ws';
import { type SocketLike, SyncClient, SyncClientError, type SyncClientOptions } from './sync-client';

/**
 * A walsync client over PGlite in Node: plain SQL on `db`, local writes captured and pushed, the
 * server's changes applied with their position in one transaction.
 *
 * @example
 *   const client = await createSyncClient({ url: 'http://localhost:3000', token, dataDir: './data' });
 *   await client.ready;
 *   await client.db.query(`INSERT INTO task (workspace_id, project_id, title) VALUES ($1, $2, 'hi')`, [w, p]);
 *   await client.flush();
 */
export async function createSyncClient(options: SyncClientOptions): Promise<SyncClient> {
  let release: (() => Promise<void>) | undefined;
  let reportLostLock: (error: Error) => void = () => undefined;
  if (!options.dataDir.startsWith('memory://')) {
    mkdirSync(options.dataDir, { recursive: true });
    try {
      release = await lock(options.dataDir, {
        stale: 5_000,
        update: 1_000,
        lockfilePath: `${options.dataDir}/walsync.lock`,
        // The library would throw (an uncaught exception); a lost lock is reported instead.
        onCompromised: (error) => reportLostLock(error),
      });
    } catch (error) {
      throw new SyncClientError(
        'locked',
        `${options.dataDir} is already open in another walsync client; two on one database would lose rows. Close the other first.`,
        { cause: error },
      );
    }
  }
  try {
    const db = await openLocalDatabase(options.dataDir);
    const client = new SyncClient(db, options, (url) => new WebSocket(url) as unknown as SocketLike, release);
    reportLostLock = (error) => client.lostLock(error);
    await client.start();
    return client;
  } catch (error) {
    await release?.();
    throw error;
  }
}

/** Opens the database; a directory PGlite cannot start from is reported as corrupt, and left as it is. */
async function openLocalDatabase(dataDir: string): Promise<PGlite> {
  try {
    return await PGlite.create(dataDir);
  } catch (error) {
    throw new SyncClientError(
      'corrupt_database',
      `the local database in ${dataDir} cannot be opened (${(error as Error).message}); it was left untouched for inspection — move it aside to start a fresh replica`,
      { cause: error },
    );
  }
}
