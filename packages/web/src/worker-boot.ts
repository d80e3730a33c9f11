/**
 * The worker's first module (dist/worker.js): a few kilobytes that start fetching and compiling
 * PGlite's files (and, for a new replica, fetching its template) at once, then load the worker's
 * main module (dist/worker-main.js, a megabyte: PGlite, zod, the sync loop; see ./worker.ts), which
 * picks them up. On a first load the compile no longer waits for the main module to be parsed.
 * Only a worker that will likely lead does it: none holds the replica's lock yet (a follower tab's
 * worker never opens the database). The tab names the replica in the URL (`?replica=<name>`).
 */
import { retryDelay } from '@walsync/db/retry';
import { opfsExists, startPrefetch } from './browser-artifacts';
import { type BootMessage, bootChannelName } from './boot-channel';

async function prefetchIfLeading(replica: string | null): Promise<void> {
  if (!replica) return;
  const locks = await navigator.locks.query().catch(() => undefined);
  if (!locks || locks.held?.some((lock) => lock.name === `walsync:${replica}`)) return;
  // Without OPFS the replica is taken to exist: PGlite's files are started, the template is not.
  startPrefetch(!(await opfsExists(replica).catch(() => true)));
}

/**
 * Loads the worker's main module, built beside this one. A page can come up and lose the server
 * before the worker asked for it (the network dropped, the server restarted): then the tab is told
 * (on its boot channel; its status is `offline`) and the module is asked for again on the client's
 * backoff until it loads. A server that answers without the module (a wrong setup) or a module
 * that throws fails the start as before: the tab reports it.
 */
async function loadMain(boot: string | null): Promise<void> {
  const main = new URL('./worker-main.js', import.meta.url);
  const tab = boot ? new BroadcastChannel(bootChannelName(boot)) : undefined;
  try {
    await loadWhenReachable(main, (message) => tab?.postMessage(message));
  } finally {
    tab?.close();
  }
}

async function loadWhenReachable(main: URL, tellTab: (message: BootMessage) => void): Promise<void> {
  let away = false;
  for (let attempt = 0; ; attempt++) {
    try {
      await import(main.href);
      return;
    } catch (error) {
      const answered = await fetch(main, { method: 'HEAD', cache: 'no-store' }).then(
        (response) => response.ok,
        () => undefined,
      );
      // It answered: the module is not there, or it threw as it ran (once more if the server just came back).
      if (answered === false || (answered === true && !away)) throw error;
      away = answered === undefined;
      if (away) {
        tellTab({ type: 'unreachable' });
        await new Promise((resolve) => setTimeout(resolve, retryDelay(attempt)));
      }
      // A module that failed to load stays failed under its URL: the next attempt asks under another.
      main.searchParams.set('attempt', String(attempt + 1));
    }
  }
}

const params = new URL(self.location.href).searchParams;
await prefetchIfLeading(params.get('replica')).catch(() => undefined);
await loadMain(params.get('boot'));
