/**
 * The worker's first module (dist/worker.js): a few kilobytes that start fetching and compiling
 * PGlite's files (and, for a new replica, fetching its template) at once, then load the worker's
 * main module (dist/worker-main.js, a megabyte: PGlite, zod, the sync loop; see ./worker.ts), which
 * picks them up. On a first load the compile no longer waits for the main module to be parsed.
 * Only a worker that will likely lead does it: none holds the replica's lock yet (a follower tab's
 * worker never opens the database). The tab names the replica in the URL (`?replica=<name>`).
 */
import { opfsExists, startPrefetch } from './browser-artifacts';

async function prefetchIfLeading(replica: string | null): Promise<void> {
  if (!replica) return;
  const locks = await navigator.locks.query().catch(() => undefined);
  if (!locks || locks.held?.some((lock) => lock.name === `walsync:${replica}`)) return;
  // Without OPFS the replica is taken to exist: PGlite's files are started, the template is not.
  startPrefetch(!(await opfsExists(replica).catch(() => true)));
}

await prefetchIfLeading(new URL(self.location.href).searchParams.get('replica')).catch(() => undefined);
// @ts-expect-error built beside this module from ./worker.ts (see build.ts), not a source file
await import('./worker-main.js');
