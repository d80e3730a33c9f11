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

async function opfsExists(name: string): Promise<boolean> {
  const root = await navigator.storage.getDirectory();
  return root.getDirectoryHandle(name).then(
    () => true,
    () => false,
  );
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

/** Where the worker keeps PGlite's own files (the WASM Postgres, its data bundle, initdb). */
const ARTIFACT_CACHE = 'walsync-pglite';

/**
 * One of PGlite's files beside the worker: from the server when it answers (stored in Cache Storage
 * when it changed), else the stored copy. PGlite fetches them at every start; without a copy, a
 * replica could not open while the server is away — the moment local-first is for.
 */
async function artifact(name: string): Promise<Response> {
  const url = new URL(`./${name}`, import.meta.url);
  // Cache Storage exists only in secure contexts (https, localhost).
  const cache = typeof caches === 'undefined' ? undefined : await caches.open(ARTIFACT_CACHE).catch(() => undefined);
  const stored = await cache?.match(url).catch(() => undefined);
  let response: Response;
  try {
    response = await fetch(url);
    if (!response.ok) throw new Error(`${url.pathname} answered HTTP ${response.status}`);
  } catch (error) {
    if (stored) return stored;
    throw new Error(`PGlite's ${name} could not be loaded (${(error as Error).message}) and no copy is stored yet`);
  }
  const version = (headers: Headers) => headers.get('etag') ?? headers.get('last-modified') ?? headers.get('content-length');
  // Stored in the background: a first start does not wait for 15 MB to be written twice (a close waits, see artifactsStored).
  if (cache && (!stored || version(stored.headers) !== version(response.headers))) {
    const storing = cache.put(url, response.clone()).catch(() => undefined);
    storingArtifacts.add(storing);
    void storing.finally(() => storingArtifacts.delete(storing));
  }
  return response;
}

/** PGlite's files being stored in Cache Storage (see `artifact`). */
const storingArtifacts = new Set<Promise<void>>();

/** Resolves once PGlite's files fetched so far are stored, so that a replica closed right after its first start still opens offline. */
export async function artifactsStored(): Promise<void> {
  await Promise.all(storingArtifacts);
}

async function compiled(name: string): Promise<WebAssembly.Module> {
  const response = await artifact(name);
  return response.headers.get('content-type')?.startsWith('application/wasm') ? WebAssembly.compileStreaming(response) : WebAssembly.compile(await response.arrayBuffer());
}

/** PGlite's options for its own files, loaded through `artifact`, and how it starts Postgres. */
type PGliteFiles = { pgliteWasmModule: WebAssembly.Module; initdbWasmModule: WebAssembly.Module; fsBundle: Blob; startParams: string[]; extensions: { live: typeof live } };


async function pgliteFiles(): Promise<PGliteFiles> {
  const [pgliteWasmModule, initdbWasmModule, fsBundle] = await Promise.all([compiled('pglite.wasm'), compiled('initdb.wasm'), artifact('pglite.data').then((response) => response.blob())]);
  // Live queries run here, beside the replica (the leader tab's `db.live.query` asks for them, see ./browser.ts).
  return { pgliteWasmModule, initdbWasmModule, fsBundle, startParams: REPLICA_START_PARAMS, extensions: { live } };
}

/**
 * The migrated replica template the build made (replica.tar.gz beside the worker), if it is served,
 * and how many files it holds (replica.json, a few bytes: known before the archive arrives).
 */
function replicaTemplate(): { data: Promise<Blob | undefined>; files: Promise<number | undefined> } {
  const data = fetch(new URL('./replica.tar.gz', import.meta.url))
    .then((response) => (response.ok ? response.blob() : undefined))
    .catch(() => undefined);
  const files = fetch(new URL('./replica.json', import.meta.url))
    .then((response) => (response.ok ? (response.json() as Promise<{ files?: unknown }>) : undefined))
    .then((stamp) => (Number.isSafeInteger(stamp?.files) ? (stamp!.files as number) : undefined))
    .catch(() => undefined);
  return { data, files };
}

/** A new replica from the template (no initdb, no migrations in the browser), stored before anything else happens. */
async function fromTemplate(dataDir: string, loading: Promise<PGliteFiles>): Promise<PGlite> {
  const template = replicaTemplate();
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
  // Fetched and compiled once, while the replica's storage is looked at; every open below uses them.
  const files = pgliteFiles();
  files.catch(() => undefined);
  if (storage === 'indexeddb') {
    const dataDir = `idb://${name}`;
    if (!(await idbExists(name))) {
      try {
        return await fromTemplate(dataDir, files);
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
  if (!(await opfsExists(name))) return fromTemplate(dataDir, files);
  const opening = where(dataDir);
  return PGlite.create({ ...opening, ...(await files) });
}
