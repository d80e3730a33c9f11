import path from 'node:path';
import { Tokens } from '@walsync/server';
import type { Page } from 'playwright-core';
import {
  type RunningBrowser,
  type ServerProcess,
  TEST_JWT_SECRET,
  type TestDatabase,
  launchBrowser,
  postgresTargets,
  scratchDir,
  seedWorkspaces,
  serveWebPackage,
  startDatabase,
  startServerProcess,
} from '@walsync/test-support';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

declare global {
  interface Window {
    walsync: typeof import('../src/browser');
    client: import('../src/browser').BrowserSyncClient;
    errors: Array<{ code?: string; message: string }>;
    settled: unknown;
  }
}

/** Opens a client in the page (the test harness serves the built browser client); records its errors and how `ready` settled. */
function open(page: Page, options: { url: string; token: string; dataDir: string }): Promise<void> {
  return page.evaluate(async (options) => {
    window.errors = [];
    window.settled = undefined;
    window.client = await window.walsync.createSyncClient(options);
    window.client.on('error', (error) => window.errors.push({ code: (error as { code?: string }).code, message: error.message }));
    window.client.ready.then(
      () => (window.settled = 'resolved'),
      (error: { code?: string }) => (window.settled = { code: error.code }),
    );
  }, options);
}

describe('the browser client tells the truth about its connection', () => {
  let db: TestDatabase;
  let server: ServerProcess;
  let web: Awaited<ReturnType<typeof serveWebPackage>>;
  let browser: RunningBrowser;
  let page: Page;
  let token: string;
  const scratch = scratchDir('browser-connection');

  beforeAll(async () => {
    db = await startDatabase(postgresTargets()[0]!);
    const seed = await seedWorkspaces(db);
    token = await new Tokens(TEST_JWT_SECRET).issue(seed.users.alice);
    server = await startServerProcess(db.url);
    web = await serveWebPackage();
    browser = await launchBrowser(path.join(scratch.dir, 'profile'));
    page = await browser.page(`${web.url}/test/browser/harness.html`);
    await page.waitForFunction(() => document.title === 'ready');
  });
  afterAll(async () => {
    if (server) process.kill(server.pid, 'SIGCONT');
    await browser?.close();
    await web?.close();
    await server?.stop();
    await db?.dispose();
    scratch.remove();
  });

  it('reports a page server that is not walsync as bad_url, with a rejected ready', async () => {
    await open(page, { url: web.url, token, dataDir: 'idb://wrong-url' });
    await page.waitForFunction(() => window.settled !== undefined, undefined, { timeout: 15_000 });
    expect(await page.evaluate(() => window.settled)).toEqual({ code: 'bad_url' });
    expect(await page.evaluate(() => window.errors.map((error) => error.code))).toEqual(['bad_url']);
    expect(await page.evaluate(() => window.client.status)).toBe('error');
    await page.evaluate(() => window.client.close());
  });

  it("shows offline while the worker's code cannot be fetched, and starts once it can", async () => {
    // The server that serves the client's code goes away after the page loaded, before the worker asked for its main module.
    let away = true;
    const isWorkerMain = (url: URL) => url.pathname.endsWith('/worker-main.js');
    let imports = 0;
    await page.context().route(isWorkerMain, (route) => {
      if (route.request().method() === 'GET') imports++;
      return away ? route.abort('connectionrefused') : route.continue();
    });
    try {
      await open(page, { url: server.url, token, dataDir: 'idb://code-away' });
      await page.waitForFunction(() => window.client.status === 'offline', undefined, { timeout: 10_000 });
      // Asked again on the backoff meanwhile, and still not started.
      await expect.poll(() => imports, { timeout: 10_000 }).toBeGreaterThanOrEqual(3);
      expect(await page.evaluate(() => window.settled)).toBeUndefined();
      away = false;
      await page.waitForFunction(() => window.settled !== undefined, undefined, { timeout: 20_000 });
      expect(await page.evaluate(() => window.settled)).toBe('resolved');
      await page.waitForFunction(() => window.client.status === 'up-to-date', undefined, { timeout: 15_000 });
      expect(await page.evaluate(async () => (await window.client.db.query(`SELECT name FROM project`)).rows)).toEqual([{ name: 'Launch' }]);
      expect(await page.evaluate(() => window.errors)).toEqual([]);
    } finally {
      await page.context().unroute(isWorkerMain);
      await page.evaluate(() => window.client?.close());
    }
  });

  it('reports a worker whose code the server does not have as an error, not as connecting', async () => {
    const isWorkerMain = (url: URL) => url.pathname.endsWith('/worker-main.js');
    await page.context().route(isWorkerMain, (route) => route.fulfill({ status: 404, body: 'not here' }));
    try {
      await open(page, { url: server.url, token, dataDir: 'idb://code-missing' });
      await page.waitForFunction(() => window.settled !== undefined, undefined, { timeout: 15_000 });
      expect(await page.evaluate(() => window.client.status)).toBe('error');
      expect(await page.evaluate(() => window.client.ready.catch((error: Error) => error.message))).toMatch(/the walsync worker could not start/);
    } finally {
      await page.context().unroute(isWorkerMain);
      await page.evaluate(() => window.client?.close());
    }
  });

  it('connects with the sync endpoint (ws://…/sync), shows offline within 10 s of a SIGSTOP of the server, and recovers', async () => {
    await open(page, { url: `${server.url.replace(/^http/, 'ws')}/sync`, token, dataDir: 'idb://silent' });
    await page.evaluate(() => window.client.ready);
    await page.waitForFunction(() => window.client.status === 'up-to-date', undefined, { timeout: 15_000 });
    process.kill(server.pid, 'SIGSTOP');
    const stopped = Date.now();
    await page.waitForFunction(() => window.client.status === 'offline', undefined, { timeout: 12_000, polling: 100 });
    expect(Date.now() - stopped).toBeLessThanOrEqual(10_000);
    process.kill(server.pid, 'SIGCONT');
    await page.waitForFunction(() => window.client.status === 'up-to-date', undefined, { timeout: 20_000 });
    await db.query(`INSERT INTO task (workspace_id, project_id, title) SELECT workspace_id, id, 'after the pause' FROM project WHERE name = 'Launch'`);
    await page.waitForFunction(async () => (await window.client.db.query(`SELECT 1 FROM task WHERE title = 'after the pause'`)).rows.length === 1, undefined, { timeout: 15_000 });
    expect(await page.evaluate(() => window.errors)).toEqual([]);
    await page.evaluate(() => window.client.close());
  });
});
