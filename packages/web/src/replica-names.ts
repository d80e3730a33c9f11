/** A browser replica's name and storage, as the app gives them (no PGlite here: the tab's bundle imports this). */

/** What the app asks for: `auto` (OPFS where available), or one of them forced. */
export type StoragePreference = 'auto' | 'opfs' | 'indexeddb';
/** Where the replica is. */
export type Storage = 'opfs' | 'indexeddb';

export const STORAGE_PREFERENCES: readonly StoragePreference[] = ['auto', 'opfs', 'indexeddb'];

/** A replica name: what follows an optional `idb://` in `dataDir` (the prefix from before OPFS is only a name now). */
const NAME_PATTERN = /^[A-Za-z0-9_.-]{1,100}$/;

/** The replica's name from `dataDir` (`walsync-demo` or `idb://walsync-demo`), or undefined when it is not one. */
export function replicaName(dataDir: string): string | undefined {
  const name = dataDir.startsWith('idb://') ? dataDir.slice('idb://'.length) : dataDir;
  return NAME_PATTERN.test(name) ? name : undefined;
}
