import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { WebSocket } from 'ws';
import { REPLICA_START_PARAMS } from './pglite-start';
import { LOCK_FILES, lockReplica } from './replica-lock';
import { EarlyHello, type HelloFields, parseHelloFields } from './early-hello';
import { syncEndpoint } from './endpoint';
import { SyncClient } from './sync-client';
import type { SocketLike } from './endpoint';
import { SyncClientError, type SyncClientOptions } from './types';

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
  // A URL that cannot be a walsync server is refused before anything is opened.
  syncEndpoint(options.url);
  let release: (() => Promise<void>) | undefined;
  let reportLostLock: (error: Error) => void = () => undefined;
  if (!options.dataDir.startsWith('memory://')) {
    mkdirSync(options.dataDir, { recursive: true });
    try {
      // The library would throw (an uncaught exception) on a lost lock; it is reported instead.
      release = await lockReplica(options.dataDir, (error) => reportLostLock(error));
    } catch (error) {
      throw new SyncClientError(
        'locked',
        `${options.dataDir} is already open in another walsync client; two on one database would lose rows. Close the other first.`,
        { cause: error },
      );
    }
  }
  try {
    const openSocket = (url: string) => new WebSocket(url) as unknown as SocketLike;
    const hello = options.dataDir.startsWith('memory://') ? undefined : path.join(options.dataDir, HELLO_FILE);
    // The session starts while PGlite does (≈150 ms): its hello is the one the replica had at close.
    const fields = hello ? readHelloFields(hello) : undefined;
    const early = fields && (options.clientId ?? fields.clientId) === fields.clientId ? new EarlyHello(openSocket, syncEndpoint(options.url), options.token, fields) : undefined;
    let db: PGlite;
    try {
      db = await openLocalDatabase(options.dataDir);
    } catch (error) {
      early?.discard();
      throw error;
    }
    // Read once: a start that does not close cleanly leaves no hello behind (kept while the database could not open: left as it was).
    if (hello) rmSync(hello, { force: true });
    const saveHello = hello ? (saved: HelloFields) => writeFileSync(hello, JSON.stringify(saved)) : undefined;
    const client = new SyncClient({ db, options, openSocket, release, early, saveHello });
    reportLostLock = (error) => client.lostLock(error);
    await client.start();
    return client;
  } catch (error) {
    // The error that stopped the start is the one to report, not a lock that was lost meanwhile.
    await release?.().catch(() => undefined);
    throw error;
  }
}

/**
 * Opens the database; a directory PGlite cannot start from is reported as corrupt, and left as it is.
 * A new replica starts from the migrated template `yarn build:template` puts beside this file (as the
 * browser's does): about 1 s instead of 4 s of initdb and migrations.
 */
async function openLocalDatabase(dataDir: string): Promise<PGlite> {
  try {
    const template = newReplicaTemplate(dataDir);
    if (!template) return await PGlite.create(dataDir, { startParams: REPLICA_START_PARAMS });
    const db = await PGlite.create(dataDir, { loadDataDir: template, startParams: REPLICA_START_PARAMS });
    if (!dataDir.startsWith('memory://')) rmSync(path.join(dataDir, UNPACKING), { force: true });
    return db;
  } catch (error) {
    throw new SyncClientError(
      'corrupt_database',
      `the local database in ${dataDir} cannot be opened (${(error as Error).message}); it was left untouched for inspection — move it aside to start a fresh replica`,
      { cause: error },
    );
  }
}

/** What the replica's hello said when it last closed (read and removed at the next start). */
const HELLO_FILE = 'walsync.hello.json';

/** The saved hello fields, if any. */
function readHelloFields(file: string): HelloFields | undefined {
  return existsSync(file) ? parseHelloFields(readFileSync(file, 'utf8')) : undefined;
}

/** Marks a replica being unpacked from the template: a start killed half-way begins again. */
const UNPACKING = 'walsync.unpacking';

/** The template for a replica that does not exist yet, or undefined (an existing one, or no template built). */
function newReplicaTemplate(dataDir: string): Blob | undefined {
  // Beside the bundle; run from the sources (tsx in this repository), the build's.
  const file = [path.join(__dirname, 'replica.tar.gz'), path.join(__dirname, '../dist/replica.tar.gz')].find((place) => existsSync(place));
  if (!file) return undefined;
  if (!dataDir.startsWith('memory://')) {
    const entries = readdirSync(dataDir).filter((entry) => !LOCK_FILES.includes(entry) && entry !== HELLO_FILE);
    if (entries.includes(UNPACKING)) {
      // A start killed while unpacking: nothing was synced into these files yet, so begin again.
      for (const entry of entries) rmSync(path.join(dataDir, entry), { recursive: true, force: true });
    } else if (entries.length > 0) return undefined;
    writeFileSync(path.join(dataDir, UNPACKING), '');
  }
  return new Blob([readFileSync(file)]);
}
