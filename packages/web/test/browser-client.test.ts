import path from 'node:path';
import { freePort } from '@walsync/db/server';
import { Tokens, type WalsyncServer } from '@walsync/server';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scratchDir } from '../../db/test/support/postgres';
import { type TestDatabase, postgresTargets, seedWorkspaces, startDatabase, waitFor } from '../../server/test/support/database';
import { TEST_JWT_SECRET, startServer } from '../../server/test/support/servers';
import { type RunningBrowser, launchBrowser, serveWebPackage } from './support/browser';

declare global {
  interface Window {
    walsync: typeof import('../src/browser');
    client: import('../src/browser').BrowserSyncClient;
    events: Array<{ name: string; args: unknown[] }>;
  }
}

/** Opens the replica in a page, recording every event; resolves when the tab has its handle. */
async function openClient(page: Page, options: { url: string; token: string; dataDir: string }): Promise<void> {
  await page.waitForFunction(() => document.title === 'ready');
  await page.evaluate(async (options) => {
    window.events = [];
    window.client = await window.walsync.createSyncClient(options);
    for (const name of ['captured', 'push', 'pull:received', 'pull:applied', 'conflict', 'error', 'bootstrap:start', 'bootstrap:progress', 'bootstrap:complete', 'status'] as const) {
      window.client.on(name, (...args: unknown[]) => window.events.push({ name, args }));
    }
  }, options);
}

const sql = <T = Record<string, unknown>>(page: Page, query: string, params: unknown[] = []) =>
  page.evaluate(async ([query, params]) => (await window.client.db.query(query as string, params as unknown[])).rows, [query, params] as const) as Promise<T[]>;

describe('the client in Chromium', () => {
  let db: TestDatabase;
  let server: WalsyncServer | undefined;
  let web: Awaited<ReturnType<typeof serveWebPackage>>;
  let seed: Awaited<ReturnType<typeof seedWorkspaces>>;
  let token: string;
  let serverPort: number;
  const scratch = scratchDir('browser');
  const browsers: RunningBrowser[] = [];
  const harness = () => `${web.url}/test/browser/harness.html`;
  const serverUrl = () => `http://127.0.0.1:${serverPort}`;
  const launch = async (profile: string) => {
    const browser = await launchBrowser(path.join(scratch.dir, profile));
    browsers.push(browser);
    return browser;
  };

  beforeAll(async () => {
    db = await startDatabase(postgresTargets()[0]!);
    serverPort = await freePort();
    server = await startServer(db.url, { port: serverPort });
    web = await serveWebPackage();
    seed = await seedWorkspaces(db);
    token = await new Tokens(TEST_JWT_SECRET).issue(seed.users.alice);
  });
  afterAll(async () => {
    for (const browser of browsers) await browser.close();
    await web?.close();
    await server?.stop();
    await db?.dispose();
    scratch.remove();
  });

  it('hydrates, captures local writes, and follows the server', async () => {
    const browser = await launch('basic');
    const page = await browser.page(harness());
    await openClient(page, { url: serverUrl(), token, dataDir: 'idb://basic' });
    await page.evaluate(() => window.client.ready);
    const serverTasks = await db.query(`SELECT id, title FROM task WHERE workspace_id = $1 ORDER BY id`, [seed.workspaces.shared]);
    expect(await sql(page, `SELECT id, title FROM task ORDER BY id`)).toEqual(serverTasks);

    await sql(page, `INSERT INTO task (workspace_id, project_id, title) VALUES ($1, $2, 'from chromium')`, [seed.workspaces.shared, seed.projects.launch]);
    await page.evaluate(() => window.client.flush());
    expect(await db.query(`SELECT title FROM task WHERE title = 'from chromium'`)).toHaveLength(1);

    await db.query(`UPDATE task SET title = 'renamed by psql' WHERE title = 'from chromium'`);
    await waitFor('the page to see the psql update', async () => (await sql(page, `SELECT 1 FROM task WHERE title = 'renamed by psql'`)).length === 1);
    const events = await page.evaluate(() => window.events.map((event) => event.name));
    expect(events).toContain('bootstrap:complete');
    expect(events).toContain('pull:applied');
    expect(events).not.toContain('error');
  });
});
