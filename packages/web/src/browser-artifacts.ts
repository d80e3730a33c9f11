/**
 * PGlite's own files (its WASM Postgres, data bundle and initdb) and the replica template, fetched
 * beside the worker. Small on purpose: the worker's bootstrap (./worker-boot.ts) starts these
 * fetches and the WASM compile with it, while the worker's main module (a megabyte) still loads.
 */

/** Where the worker keeps PGlite's own files (the WASM Postgres, its data bundle, initdb). */
const ARTIFACT_CACHE = 'walsync-pglite';

/** What both of the worker's modules share (each bundles this file): the stores under way, the bootstrap's fetches. */
const shared = globalThis as typeof globalThis & { __walsyncStoring?: Set<Promise<void>>; __walsyncPrefetch?: Prefetch };

/** PGlite's files being stored in Cache Storage (see `artifact`). */
const storingArtifacts = (shared.__walsyncStoring ??= new Set<Promise<void>>());

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

/** Resolves once PGlite's files fetched so far are stored, so that a replica closed right after its first start still opens offline. */
export async function artifactsStored(): Promise<void> {
  await Promise.all(storingArtifacts);
}

async function compiled(name: string): Promise<WebAssembly.Module> {
  const response = await artifact(name);
  return response.headers.get('content-type')?.startsWith('application/wasm') ? WebAssembly.compileStreaming(response) : WebAssembly.compile(await response.arrayBuffer());
}

/** PGlite's options for its own files. */
export type PGliteFileModules = { pgliteWasmModule: WebAssembly.Module; initdbWasmModule: WebAssembly.Module; fsBundle: Blob };

export async function pgliteFileModules(): Promise<PGliteFileModules> {
  const [pgliteWasmModule, initdbWasmModule, fsBundle] = await Promise.all([compiled('pglite.wasm'), compiled('initdb.wasm'), artifact('pglite.data').then((response) => response.blob())]);
  return { pgliteWasmModule, initdbWasmModule, fsBundle };
}

/** The migrated replica template the build made (replica.tar.gz), if it is served, and how many files it holds (replica.json). */
export type ReplicaTemplate = { data: Promise<Blob | undefined>; files: Promise<number | undefined> };

/** Fetches the template (replica.json, a few bytes, is known before the archive arrives). */
export function replicaTemplate(): ReplicaTemplate {
  const data = fetch(new URL('./replica.tar.gz', import.meta.url))
    .then((response) => (response.ok ? response.blob() : undefined))
    .catch(() => undefined);
  const files = fetch(new URL('./replica.json', import.meta.url))
    .then((response) => (response.ok ? (response.json() as Promise<{ files?: unknown }>) : undefined))
    .then((stamp) => (Number.isSafeInteger(stamp?.files) ? (stamp!.files as number) : undefined))
    .catch(() => undefined);
  return { data, files };
}

/** Whether the replica `name` has an OPFS directory (throws where the browser has no OPFS). */
export async function opfsExists(name: string): Promise<boolean> {
  const root = await navigator.storage.getDirectory();
  return root.getDirectoryHandle(name).then(
    () => true,
    () => false,
  );
}

/** What the bootstrap started: PGlite's files, and the template when the replica looked new. */
interface Prefetch {
  files: Promise<PGliteFileModules>;
  template?: ReplicaTemplate;
}

/** Starts the fetches and the compile now (the bootstrap, in a worker that will likely lead); the template too for a new replica. */
export function startPrefetch(newReplica: boolean): void {
  const files = pgliteFileModules();
  files.catch(() => undefined);
  shared.__walsyncPrefetch = { files, template: newReplica ? replicaTemplate() : undefined };
}

/** What the bootstrap started, once (undefined when it started nothing). */
export function takePrefetch(): Prefetch | undefined {
  const prefetch = shared.__walsyncPrefetch;
  shared.__walsyncPrefetch = undefined;
  return prefetch;
}
