import { mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { freePort } from '@walsync/db/server';
import { type WalsyncServer, seedDemo } from '@walsync/server';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ARTIFACTS, type RunningBrowser, type TestDatabase, launchBrowser, postgresTargets, scratchDir, startDatabase, startServer } from '@walsync/test-support';

/** What `yarn start` serves: the demo's build, then the client's (worker.js, PGlite's files). */
const APP = [path.resolve(__dirname, '../dist'), path.dirname(createRequire(__filename).resolve('@walsync/web/package.json')) + '/dist'];
const SCREENSHOTS = path.join(ARTIFACTS, 'screenshots');

const cardTitles = async (page: Page) => (await page.getByTestId('task-title').allTextContents()).sort();

describe('the demo task board in Chromium', () => {
  let db: TestDatabase;
  let server: WalsyncServer | undefined;
  let port: number;
  const scratch = scratchDir('demo-app');
  const browsers: RunningBrowser[] = [];
  const serve = async () => {
    server = await startServer(db.url, { port, app: { staticDirs: APP, devLogin: true } });
  };
  /** One browser per user: separate profiles, separate IndexedDB. */
  const open = async (user: string) => {
    const browser = await launchBrowser(path.join(scratch.dir, user));
    browsers.push(browser);
    const page = await browser.page(`http://127.0.0.1:${port}/?user=${user}@demo.test`);
    await page.setViewportSize({ width: 1280, height: 760 });
    await page.getByTestId('task-card').first().waitFor({ timeout: 60_000 });
    // The first cards of a new profile come from the server (its first view): the tests here are about the replica's.
    await page.waitForFunction(`performance.getEntriesByName('walsync:ready').length > 0`, undefined, { timeout: 60_000 });
    return page;
  };
  const shot = (page: Page, name: string) => page.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`) });
  /**
   * Waits for `title` in `page`; on a timeout the error also says where each side stood (the pages'
   * status and pending count, and whether the server has the row), so a failure in CI tells which
   * side stalled.
   */
  const waitForTitle = async (page: Page, title: string, timeout: number) => {
    try {
      await page.getByTestId('task-title').filter({ hasText: title }).waitFor({ timeout });
    } catch (error) {
      const state = async (name: string, each: Page) =>
        `${name}: ${await each.getByTestId('sync-status').textContent({ timeout: 1_000 }).catch(() => '?')}, ${await each.getByTestId('pending-count').textContent({ timeout: 1_000 }).catch(() => 'none')} pending`;
      const stored = (await db.query(`SELECT 1 FROM task WHERE title = $1`, [title])).length > 0;
      const where = [await state('alice', alice), await state('bob', bob), `the server ${stored ? 'has' : 'does not have'} the row`];
      throw new Error(`"${title}" did not appear within ${timeout} ms (${where.join('; ')})`, { cause: error });
    }
  };
  const addTask = async (page: Page, title: string) => {
    await page.getByTestId('new-task-title').fill(title);
    await page.getByTestId('add-task').click();
    await page.getByTestId('task-title').filter({ hasText: title }).waitFor();
  };

  let alice: Page;
  let bob: Page;
  let carol: Page;

  beforeAll(async () => {
    mkdirSync(SCREENSHOTS, { recursive: true });
    db = await startDatabase(postgresTargets()[0]!);
    await seedDemo(db.pool);
    port = await freePort();
    await serve();
    [alice, bob, carol] = await Promise.all([open('alice'), open('bob'), open('carol')]);
  });
  afterAll(async () => {
    for (const browser of browsers) await browser.close();
    await server?.stop();
    await db?.dispose();
    scratch.remove();
  });

  it('shows each user their workspace, and a task added by alice appears for bob but never for carol', async () => {
    expect(await cardTitles(alice)).toEqual(await cardTitles(bob));
    expect(await cardTitles(carol)).not.toEqual(await cardTitles(alice));
    await expect.poll(() => alice.getByTestId('sync-status').textContent()).toBe('online');

    await addTask(alice, 'Ship the sync demo');
    await bob.getByTestId('task-title').filter({ hasText: 'Ship the sync demo' }).waitFor({ timeout: 10_000 });
    await expect.poll(() => alice.getByTestId('pending-count').textContent()).toBe('0');
    expect(await db.query(`SELECT 1 FROM task WHERE title = 'Ship the sync demo'`)).toHaveLength(1);
    // carol is told nothing of it: not on her board, not in her replica.
    await carol.reload();
    await carol.getByTestId('task-card').first().waitFor();
    expect(await cardTitles(carol)).not.toContain('Ship the sync demo');
    expect(await cardTitles(carol)).toEqual(
      (await db.query<{ title: string }>(`SELECT title FROM task JOIN project p ON p.id = task.project_id WHERE p.name = 'Portfolio' AND task.deleted_at IS NULL`)).map((row) => row.title).sort(),
    );
    await shot(alice, 'board-alice');
    await shot(bob, 'board-bob');
    await shot(carol, 'board-carol');
  });

  it('moves, edits, comments on and deletes tasks across browsers', async () => {
    await addTask(bob, 'Move me along');
    const card = (page: Page) => page.getByTestId('task-card').filter({ hasText: 'Move me along' });
    await card(alice).waitFor({ timeout: 10_000 });
    await card(alice).getByTestId('move-right').click();
    await expect.poll(() => card(bob).getAttribute('data-status'), { timeout: 10_000 }).toBe('doing');
    await card(bob).getByTestId('task-title').dblclick();
    await bob.getByTestId('edit-title').fill('Moved and renamed');
    await bob.getByTestId('edit-title').press('Enter');
    await alice.getByTestId('task-title').filter({ hasText: 'Moved and renamed' }).waitFor({ timeout: 10_000 });
    // A comment from bob reaches alice's card.
    const renamed = (page: Page) => page.getByTestId('task-card').filter({ hasText: 'Moved and renamed' });
    await renamed(bob).getByTestId('toggle-comments').click();
    await renamed(bob).getByTestId('new-comment').fill('On it');
    await renamed(bob).getByTestId('new-comment').press('Enter');
    await expect.poll(() => renamed(alice).getByTestId('toggle-comments').textContent(), { timeout: 10_000 }).toBe('1 comment');
    await renamed(alice).getByTestId('toggle-comments').click();
    await renamed(alice).getByTestId('comment').filter({ hasText: 'On it' }).waitFor({ timeout: 10_000 });
    await alice.getByTestId('task-card').filter({ hasText: 'Moved and renamed' }).getByTestId('delete-task').click();
    await expect.poll(() => cardTitles(bob), { timeout: 10_000 }).not.toContain('Moved and renamed');
    expect(await db.query(`SELECT status, deleted_at IS NOT NULL AS deleted FROM task WHERE title = 'Moved and renamed'`)).toEqual([{ status: 'doing', deleted: true }]);
  });

  it("shows a tab's own write before the replica's live query has it, keeps it until then, and takes back one that fails", async () => {
    // Watched from the click: shown before the replica's live query has it (pending), never gone, then the replica's.
    // (How soon after the click is `yarn bench demo`'s figure: a timing check here would race a loaded machine.)
    const watch = (title: string) =>
      alice.evaluate(
        (title) =>
          new Promise<{ pendingSeen: boolean; vanished: boolean; confirmed: boolean }>((resolve) => {
            const find = () => Array.from(document.querySelectorAll('[data-testid="task-card"]')).find((card) => card.querySelector('[data-testid="task-title"]')?.textContent === title);
            const seen = { pendingSeen: false, vanished: false, confirmed: false };
            const check = () => {
              const card = find();
              if (!card) {
                if (seen.pendingSeen) seen.vanished = true;
                return;
              }
              if (card.hasAttribute('data-pending')) seen.pendingSeen = true;
              else if (seen.pendingSeen) {
                seen.confirmed = true;
                observer.disconnect();
                resolve(seen);
              }
            };
            const observer = new MutationObserver(check);
            observer.observe(document.body, { childList: true, subtree: true, attributes: true, characterData: true });
            (document.querySelector('[data-testid="add-task"]') as HTMLButtonElement).click();
            check();
            setTimeout(() => resolve(seen), 10_000);
          }),
        title,
      );
    await alice.getByTestId('new-task-title').fill('Seen at once');
    expect(await watch('Seen at once')).toEqual({ pendingSeen: true, vanished: false, confirmed: true });
    await bob.getByTestId('task-title').filter({ hasText: 'Seen at once' }).waitFor({ timeout: 10_000 });

    // Postgres refuses a NUL in text: the card shown at once is taken back, and the page says why.
    await alice.getByTestId('new-task-title').fill('bad \u0000 title');
    await alice.getByTestId('add-task').click();
    await alice.getByTestId('write-failed').waitFor({ timeout: 10_000 });
    expect(await alice.getByTestId('task-card').filter({ hasText: 'bad' }).count()).toBe(0);
    expect(await db.query(`SELECT 1 FROM task WHERE title LIKE 'bad %'`)).toHaveLength(0);
  });

  it('shows a psql UPDATE on the server in the open page', async () => {
    await db.query(`UPDATE task SET title = 'Renamed from psql' WHERE title = 'Ship the sync demo'`);
    await alice.getByTestId('task-title').filter({ hasText: 'Renamed from psql' }).waitFor({ timeout: 10_000 });
    await bob.getByTestId('task-title').filter({ hasText: 'Renamed from psql' }).waitFor({ timeout: 10_000 });
  });

  it('keeps local data across a reload, and edits made while the server is down sync when it returns', async () => {
    await alice.reload();
    await alice.getByTestId('task-title').filter({ hasText: 'Renamed from psql' }).waitFor({ timeout: 10_000 });
    // That card can be the page's last view; the server stops once the replica is open (its worker's
    // code comes from the server: a worker that cannot load it waits for the server, see
    // browser-connection-truth.test.ts).
    await alice.waitForFunction(`performance.getEntriesByName('walsync:ready').length > 0`, undefined, { timeout: 30_000 });

    await server!.stop();
    server = undefined;
    await expect.poll(() => alice.getByTestId('sync-status').textContent(), { timeout: 15_000 }).toBe('offline');
    await addTask(alice, 'Written while offline');
    await expect.poll(() => alice.getByTestId('pending-count').textContent()).toBe('1');
    await shot(alice, 'board-offline');

    await serve();
    await waitForTitle(bob, 'Written while offline', 30_000);
    await expect.poll(() => alice.getByTestId('pending-count').textContent(), { timeout: 15_000 }).toBe('0');
    await expect.poll(() => alice.getByTestId('sync-status').textContent(), { timeout: 15_000 }).toBe('online');
    expect(await db.query(`SELECT 1 FROM task WHERE title = 'Written while offline'`)).toHaveLength(1);
  });

  it('paints the last view on a reload before the replica has opened', async () => {
    // The client's worker script is held back, so the replica cannot open: the cards can come only from
    // the page's last view (SyncProvider's lastResults), however quick or slow this machine is.
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const isWorker = (url: URL) => url.pathname.endsWith('/worker.js');
    await alice.context().route(isWorker, async (route) => {
      await held;
      await route.continue().catch(() => undefined); // the page that asked may have gone
    });
    try {
      // Reloaded again and again before the replica answered: each start keeps the last view for the next.
      for (let i = 0; i < 3; i++) {
        await alice.reload({ waitUntil: 'domcontentloaded' });
        await alice.getByTestId('task-title').filter({ hasText: 'Written while offline' }).waitFor({ timeout: 10_000 });
        expect(await alice.evaluate(`performance.getEntriesByName('walsync:ready').length`)).toBe(0);
      }
    } finally {
      release();
      await alice.context().unroute(isWorker);
    }
    // Then the replica opens, and the board is the replica's: a change arrives and shows as before.
    await alice.waitForFunction(`performance.getEntriesByName('walsync:ready').length > 0`, undefined, { timeout: 30_000 });
    await db.query(`UPDATE task SET title = 'Renamed after the reload' WHERE title = 'Written while offline'`);
    await waitForTitle(alice, 'Renamed after the reload', 10_000);
  });

  it("paints a first visit's board from the server before the replica has opened, and a task added then lands once it has", async () => {
    // A new browser profile (no last view), its client's worker script held back: the replica cannot
    // open, so the cards can come only from the rows read once from the server (POST /rows).
    const browser = await launchBrowser(path.join(scratch.dir, 'alice-first-visit'));
    browsers.push(browser);
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const isWorker = (url: URL) => url.pathname.endsWith('/worker.js');
    await browser.context.route(isWorker, async (route) => {
      await held;
      await route.continue().catch(() => undefined);
    });
    const page = await browser.context.newPage();
    try {
      await page.goto(`http://127.0.0.1:${port}/?user=alice@demo.test`);
      const [{ id: projectId }] = (await db.query<{ id: string }>(
        `SELECT p.id FROM project p JOIN workspace_member m ON m.workspace_id = p.workspace_id JOIN app_user u ON u.id = m.user_id
          WHERE u.email = 'alice@demo.test' AND p.deleted_at IS NULL AND m.deleted_at IS NULL ORDER BY p.created_at, p.name LIMIT 1`,
      )) as [{ id: string }];
      const columns = await db.query<{ status: string; n: number }>(`SELECT status::text, count(*)::int AS n FROM task WHERE project_id = $1 AND deleted_at IS NULL GROUP BY status`, [projectId]);
      const titles = (await db.query<{ title: string }>(`SELECT title FROM task WHERE project_id = $1 AND deleted_at IS NULL`, [projectId])).map((row) => row.title).sort();
      expect(titles.length).toBeGreaterThan(0);
      await expect.poll(() => cardTitles(page), { timeout: 15_000 }).toEqual(titles);
      for (const { status, n } of columns) expect(await page.locator(`section.column[data-column="${status}"] .count`).textContent()).toBe(String(n));
      expect(await page.evaluate(`performance.getEntriesByName('walsync:ready').length`)).toBe(0);
      // A task added now shows at once, and is written once the replica is there.
      await page.getByTestId('new-task-title').fill('Added before the replica opened');
      await page.getByTestId('add-task').click();
      await page.getByTestId('task-title').filter({ hasText: 'Added before the replica opened' }).waitFor({ timeout: 5_000 });
      expect(await db.query(`SELECT 1 FROM task WHERE title = 'Added before the replica opened'`)).toHaveLength(0);
    } finally {
      release();
      await browser.context.unroute(isWorker);
    }
    await expect.poll(async () => (await db.query(`SELECT 1 FROM task WHERE title = 'Added before the replica opened'`)).length, { timeout: 30_000 }).toBe(1);
    // The board is the replica's now: a change on the server shows, and the card added stays.
    await db.query(`UPDATE task SET title = 'Renamed on the server' WHERE title = 'Added before the replica opened'`);
    await page.getByTestId('task-title').filter({ hasText: 'Renamed on the server' }).waitFor({ timeout: 20_000 });
    expect(await page.evaluate(`performance.getEntriesByName('walsync:ready').length`)).toBe(1);
  });

  it('loads a project the device does not hold with its progress bar, and works offline with the projects it holds', async () => {
    // Two projects bob's device has never shown: their tasks are not on it (the board holds what it shows).
    const [{ id: workspace }] = (await db.query<{ id: string }>(`SELECT id FROM workspace WHERE name = 'Acme'`)) as [{ id: string }];
    for (const [name, tasks] of [['Big rollout', 400], ['Never opened', 1]] as const) {
      const [{ id }] = (await db.query<{ id: string }>(`INSERT INTO project (workspace_id, name) VALUES ($1, $2) RETURNING id`, [workspace, name])) as [{ id: string }];
      await db.query(`INSERT INTO task (workspace_id, project_id, title, position) SELECT $1, $2, $3 || ' ' || n, n FROM generate_series(1, $4::int) n`, [workspace, id, name, tasks]);
    }
    const project = (page: Page, name: string) => page.getByTestId('project').filter({ hasText: name });
    await project(bob, 'Never opened').waitFor({ timeout: 10_000 });
    expect(await bob.evaluate(async () => (await (window as any).walsync.db.query(`SELECT count(*)::int AS n FROM task t JOIN project p ON p.id = t.project_id WHERE p.name = 'Big rollout'`)).rows[0].n)).toBe(0);

    // Switching to it: the bar says the project is loading, counts its rows, then its cards show.
    const progress = bob.evaluate(
      () =>
        new Promise<string[]>((resolve) => {
          const seen: string[] = [];
          const observer = new MutationObserver(() => {
            const text = document.querySelector('[data-testid="hydration-progress"]')?.textContent;
            if (text && seen.at(-1) !== text) seen.push(text);
          });
          observer.observe(document.body, { childList: true, subtree: true, characterData: true });
          setTimeout(() => (observer.disconnect(), resolve(seen)), 5_000);
        }),
    );
    await project(bob, 'Big rollout').click();
    await bob.getByTestId('task-title').filter({ hasText: /^Big rollout 1$/ }).waitFor({ timeout: 15_000 });
    const shown = await progress;
    expect(shown.length).toBeGreaterThan(0);
    expect(shown.every((text) => text.startsWith('Loading the project:'))).toBe(true);
    expect(shown.at(-1)).toMatch(/of 400 rows$/);
    expect(await bob.getByTestId('task-card').count()).toBeLessThanOrEqual(3 * 40); // a page per column, not 400 cards

    // Offline: the projects it showed are on the device; one it never opened says it is not.
    await server!.stop();
    server = undefined;
    await expect.poll(() => bob.getByTestId('sync-status').textContent(), { timeout: 15_000 }).toBe('offline');
    await project(bob, 'Mobile app').click();
    await bob.getByTestId('task-title').filter({ hasText: 'Push notifications' }).waitFor({ timeout: 10_000 });
    await project(bob, 'Never opened').click();
    await bob.getByTestId('project-not-held').waitFor({ timeout: 10_000 });
    expect(await bob.getByTestId('task-card').count()).toBe(0);
    await project(bob, 'Big rollout').click();
    await bob.getByTestId('task-title').filter({ hasText: /^Big rollout 1$/ }).waitFor({ timeout: 10_000 });
    await shot(bob, 'board-offline-held-projects');

    // Back online, the one it was asked for while offline loads.
    await serve();
    // Back within the client's backoff (at most 10 s between attempts), then the project loads.
    await expect
      .poll(() => bob.getByTestId('sync-status').textContent(), { timeout: 30_000 })
      .toBe('online')
      .catch(async (error: Error) => {
        // Which failure stopped it (a CI run once saw `stopped` here): the board shows the client's error.
        const message = await bob.getByTestId('sync-message').textContent({ timeout: 1_000 }).catch(() => 'none shown');
        throw new Error(`bob did not get back online (the board's message: ${message})`, { cause: error });
      });
    await project(bob, 'Never opened').click();
    await bob.getByTestId('task-title').filter({ hasText: 'Never opened 1' }).waitFor({ timeout: 20_000 });
    expect(await bob.getByTestId('project-not-held').count()).toBe(0);
  });

  it('signs in through the development login only outside production', async () => {
    const login = (url: string, body: unknown) => fetch(`${url}/dev/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const ok = await login(server!.url, { email: 'Alice@Demo.test' });
    expect(ok.status).toBe(200);
    expect(await ok.json()).toMatchObject({ token: expect.any(String), user: { email: 'alice@demo.test' } });
    expect((await login(server!.url, { email: 'nobody@demo.test' })).status).toBe(404);
    expect((await login(server!.url, { email: 'not an address' })).status).toBe(400);
    expect((await login(server!.url, { email: 'alice@demo.test', admin: true })).status).toBe(400);
    const production = await startServer(db.url, { port: 0, app: { staticDirs: APP, devLogin: false } });
    try {
      const refused = await login(production.url, { email: 'alice@demo.test' });
      expect(refused.status).toBe(403);
      expect(await refused.json()).toEqual({ error: { code: 'dev_login_disabled', message: expect.stringMatching(/disabled in production/) } });
    } finally {
      await production.stop();
    }
  });
});
