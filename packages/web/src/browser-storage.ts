/**
 * Where a browser replica lives: OPFS through PGlite's `opfs-ahp` filesystem (sync access handles,
 * page by page, only in a dedicated worker) where the browser has it, IndexedDB (`idb`, whole files
 * read at start and copied back after writes) where it does not. Runs in the leader's worker.
 */
import { PGlite } from '@electric-sql/pglite';
import { live } from '@electric-sql/pglite/live';
import { OpfsAhpFS } from '@electric-sql/pglite/opfs-ahp';
import type { Storage, StoragePreference } from './replica-names';
import { REPLICA_START_PARAMS } from './pglite-start';
import { type PGliteFileModules, type ReplicaTemplate, opfsExists, pgliteFileModules, replicaTemplate, takePrefetch } from './browser-artifacts';

/** Whether this worker can use OPFS sync access handles (Chromium, Firefox; not every Safari). */
export function opfsAvailable(): boolean {
  return (
    typeof navigator !== 'undefined' &&
    typeof navigator.storage?.getDirectory === 'function' &&
    typeof FileSystemFileHandle !== 'undefined' &&
    'createSyncAccessHandle' in FileSystemFileHandle.prototype
  );
}

/** The storage `preference` resolves to here; throws when OPFS is demanded and missing. */
export function chooseStorage(preference: StoragePreference): Storage {
  if (preference === 'indexeddb') return 'indexeddb';
  if (opfsAvailable()) return 'opfs';
  if (preference === 'opfs') throw new Error('this browser has no OPFS sync access handles in workers; use storage: "auto" or "indexeddb"');
  return 'indexeddb';
}

const idbName = (name: string) => `/pglite/${name}`;
const OPFS = 'opfs-ahp://';

async function idbExists(name: string): Promise<boolean> {
  return (await indexedDB.databases().catch(() => [{ name: idbName(name) }])).some((database) => database.name === idbName(name));
}

async function removeOpfs(name: string): Promise<void> {
  const root = await navigator.storage.getDirectory();
  await root.removeEntry(name, { recursive: true }).catch(() => undefined);
}

function deleteIdb(name: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const request = indexedDB.deleteDatabase(idbName(name));
    request.onsuccess = () => resolve();
    request.onerror = () => reject(request.error);
    request.onblocked = () => resolve();
  });
}

/** PGlite's options for its own files (see ./browser-artifacts.ts), and how it starts Postgres. */
type PGliteFiles = PGliteFileModules & { startParams: string[]; extensions: { live: typeof live } };

async function pgliteFiles(modules: Promise<PGliteFileModules>): Promise<PGliteFiles> {
  // Live queries run here, beside the replica (the leader tab's `db.live.query` asks for them, see ./browser.ts).
  return { ...(await modules), startParams: REPLICA_START_PARAMS, extensions: { live } };
}

/** A new replica from the template (no initdb, no migrations in the browser), stored before anything else happens. */
async function fromTemplate(dataDir: string, loading: Promise<PGliteFiles>, template: ReplicaTemplate): Promise<PGlite> {
  // The OPFS files are made while the archive and PGlite's own files are still on their way.
  const opening = where(dataDir, await template.files);
  const [data, files] = await Promise.all([template.data, loading]);
  const db = await PGlite.create({ ...opening, ...files, ...(data ? { loadDataDir: data } : {}) });
  if (data) await db.fs?.syncToFs(false);
return db;
}

/** Files an OPFS replica keeps ready beyond those it uses (PGlite's default; a new file takes one). */
const SPARE_FILES = 100;

/**
 * PGlite's OPFS filesystem, opening its files (a sync access handle each, hundreds of them) as soon as
 * it is made rather than when PGlite starts, so that they open while PGlite's WASM and data bundle
 * load. Opening does not need PGlite: `OpfsAhpFS.init` opens the files, then only keeps `pg` and
 * returns the mount for PGlite's start.
 */
class EagerOpfsFS extends OpfsAhpFS {
  readonly #opened: ReturnType<OpfsAhpFS['init']>;

  constructor(name: string, options: ConstructorParameters<typeof OpfsAhpFS>[1]) {
    super(name, options);
    this.#opened = OpfsAhpFS.prototype.init.call(this, undefined as unknown as PGlite, {});
    this.#opened.catch(() => undefined);
  }

  override async init(pg: PGlite, opts: Parameters<OpfsAhpFS['init']>[1]): ReturnType<OpfsAhpFS['init']> {
    const { emscriptenOpts } = await this.#opened;
    this.pg = pg;
    return { emscriptenOpts: { ...opts, preRun: [...(opts.preRun ?? []), ...(emscriptenOpts.preRun ?? [])] } };
  }
}

/**
 * Where PGlite keeps `dataDir`. A new OPFS replica from a template of `files` files makes that many
 * and the spare ones at once; PGlite's default of 1,000 made twice the files the template needs, and
 * deleted the rest after the first query (a second of a first start).
 */
function where(dataDir: string, files?: number): { dataDir: string } | { fs: OpfsAhpFS } {
  if (!dataDir.startsWith(OPFS)) return { dataDir };
  return { fs: new EagerOpfsFS(dataDir.slice(OPFS.length), { initialPoolSize: files === undefined ? undefined : files + SPARE_FILES, maintainedPoolSize: SPARE_FILES }) };
}

/**
 * Opens the replica `name` in `storage`. A new one starts from the template. With OPFS, a replica
 * still in IndexedDB (made before OPFS, or by a browser without it) is moved once, file for file
 * (rows, position, outbox and client id with it); the IndexedDB copy is deleted only after the OPFS
 * one is stored, so a move cut short starts again from the IndexedDB copy on the next open.
 */
export async function openReplica(name: string, storage: Storage): Promise<PGlite> {
  // Fetched and compiled once (started by the worker's bootstrap when it could), while the replica's
  // storage is looked at; every open below uses them.
  const early = takePrefetch();
  const files = pgliteFiles(early?.files ?? pgliteFileModules());
  files.catch(() => undefined);
  const template = () => early?.template ?? replicaTemplate();
  if (storage === 'indexeddb') {
    const dataDir = `idb://${name}`;
    if (!(await idbExists(name))) {
      try {
        return await fromTemplate(dataDir, files, template());
      } catch (error) {
        if (!/already exists/.test((error as Error).message)) throw error;
      }
    }
    return PGlite.create(dataDir, await files);
  }
  const dataDir = `${OPFS}${name}`;
  if (await idbExists(name)) {
    await removeOpfs(name);
    const old = await PGlite.create(`idb://${name}`, await files);
    const moved = await old.dumpDataDir('none');
    await old.close();
    const db = await PGlite.create({ ...where(dataDir), ...(await files), loadDataDir: moved });
    await db.fs?.syncToFs(false);
    await deleteIdb(name);
    return db;
  }
  if (!(await opfsExists(name))) return fromTemplate(dataDir, files, template());
  const opening = where(dataDir);
  return PGlite.create({ ...opening, ...(await files) });
}
