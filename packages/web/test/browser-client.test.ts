import path from 'node:path';
import { freePort } from '@walsync/db/server';
import { Tokens, type WalsyncServer } from '@walsync/server';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningBrowser, TEST_JWT_SECRET, type TestDatabase, launchBrowser, postgresTargets, scratchDir, seedWorkspaces, serveWebPackage, startDatabase, startServer, waitFor } from '@walsync/test-support';

declare global {
  interface Window {
    walsync: typeof import('../src/browser');
    client: import('../src/browser').BrowserSyncClient;
    events: Array<{ name: string; args: unknown[] }>;
    early: Promise<number>;
    earlySettled: boolean;
    seen: { first: number[]; second: number[]; options: number[] };
    stopLive: () => Promise<void>;
    refreshLive: () => Promise<void>;
    aborter: AbortController;
  }
}

/** Opens the replica in a page, recording every event; resolves when the tab has its handle. */
async function openClient(
  page: Page,
  options: { url: string; token: string; dataDir: string; storage?: import('../src/browser').StoragePreference; subscriptions?: Array<{ name: 'project'; params: { projectId: string } }> },
): Promise<void> {
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

// Every test on both filesystems: OPFS (chosen by default in Chromium) and the IndexedDB fallback.
describe.each([
  { storage: 'auto' as const, stored: 'opfs' },
  { storage: 'indexeddb' as const, stored: 'indexeddb' },
])('the client in Chromium (storage: $storage)', ({ storage, stored }) => {
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
    const browser = await launchBrowser(path.join(scratch.dir, `${storage}-${profile}`));
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
    await openClient(page, { url: serverUrl(), token, dataDir: 'idb://basic', storage });
    await page.evaluate(() => window.client.ready);
    expect(await page.evaluate(() => window.client.storage)).toBe(stored);
    // The leader tab's queries go straight to its worker: Postgres' errors arrive with their fields.
    expect(await page.evaluate(() => window.client.db.query('SELECT no_such_column FROM task').then(() => 'no error', (error: { code?: string; message: string }) => [error.code, error.message]))).toEqual([
      '42703',
      expect.stringMatching(/no_such_column/),
    ]);
    // Its transactions too: all or nothing, and a failing statement takes the whole transaction back.
    const outcome = await page.evaluate(
      ([workspace, project]) =>
        window.client.db
          .transaction(async (tx) => {
            await tx.query(`INSERT INTO task (workspace_id, project_id, title) VALUES ($1, $2, 'in a transaction that fails')`, [workspace, project]);
            await tx.query(`INSERT INTO task (workspace_id, project_id, title) VALUES ($1, $2, NULL)`, [workspace, project]);
          })
          .then(
            () => 'committed',
            (error: { code?: string }) => error.code,
          ),
      [seed.workspaces.shared, seed.projects.launch] as const,
    );
    expect(outcome).toBe('23502');
    await page.evaluate(
      ([workspace, project]) =>
        window.client.db.transaction(async (tx) => {
          await tx.query(`INSERT INTO task (workspace_id, project_id, title) VALUES ($1, $2, 'committed in a transaction')`, [workspace, project]);
        }),
      [seed.workspaces.shared, seed.projects.launch] as const,
    );
    expect(await sql(page, `SELECT title FROM task WHERE title LIKE '%in a transaction%' ORDER BY title`)).toEqual([{ title: 'committed in a transaction' }]);
    await page.evaluate(() => window.client.flush());
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

  it('vacuums and checkpoints its replica while the stream updates the same rows again and again (PGlite has no background workers)', async () => {
    const browser = await launch('upkeep');
    const page = await browser.page(harness());
    const [project] = await db.query<{ id: string }>(`INSERT INTO project (workspace_id, name) VALUES ($1, 'churn') RETURNING id`, [seed.workspaces.shared]);
    await db.query(`INSERT INTO task (workspace_id, project_id, title) SELECT $1, $2, 'churn' FROM generate_series(1, 500)`, [seed.workspaces.shared, project!.id]);
    await openClient(page, { url: serverUrl(), token, dataDir: 'idb://upkeep', storage });
    await page.evaluate(() => window.client.ready);
    const replica = async () =>
      (
        await sql<{ vacuums: number; redo: string; written: string; segments: number }>(
          page,
          `SELECT (SELECT vacuum_count::int FROM pg_stat_user_tables WHERE relname = 'task') AS vacuums, redo_lsn::text AS redo,
                  pg_current_wal_insert_lsn()::text AS written, (SELECT count(*)::int FROM pg_ls_waldir() WHERE name ~ '^[0-9A-F]{24}$') AS segments
             FROM pg_control_checkpoint()`,
        )
      )[0]!;
    const before = await replica();
    // The project's 500 tasks updated by SQL until the replica wrote more than 40 MB of WAL applying them.
    for (let round = 0; ; round++) {
      for (let i = 0; i < 20; i++) await db.query(`UPDATE task SET title = $2 || repeat('x', 200) WHERE project_id = $1`, [project!.id, `churn ${round}.${i} `]);
      await waitFor('the page to apply the round', async () => (await sql(page, `SELECT 1 FROM task WHERE title LIKE $1 LIMIT 1`, [`churn ${round}.19 %`])).length === 1);
      const { bytes } = (await sql<{ bytes: string }>(page, `SELECT (pg_current_wal_insert_lsn() - $1::pg_lsn)::text AS bytes`, [before.written]))[0]!;
      if (Number(bytes) > 40 * 1024 * 1024) break;
      expect(round).toBeLessThan(30);
    }
    const after = await waitFor('the replica to vacuum and checkpoint', async () => {
      const now = await replica();
      return now.vacuums > before.vacuums && now.redo !== before.redo && now;
    });
    expect(after.segments).toBeLessThanOrEqual(6);
    expect(await page.evaluate(() => window.events.filter((event) => event.name === 'error').map((event) => String(event.args[0])))).toEqual([]);
  });

  it('shares one leader between two tabs, and another tab takes over when the leader closes', async () => {
    const browser = await launch('tabs');
    const first = await browser.page(harness());
    await openClient(first, { url: serverUrl(), token, dataDir: 'idb://tabs', storage });
    await first.evaluate(() => window.client.ready);
    const second = await browser.page(harness());
    await openClient(second, { url: serverUrl(), token, dataDir: 'idb://tabs', storage });
    await second.evaluate(() => window.client.ready);
    const leaders = async () => [await first.evaluate(() => window.client.isLeader), await second.evaluate(() => window.client.isLeader)];
    expect(await leaders()).toEqual([true, false]);
    // One replica, one client id, one session on the server.
    expect(await second.evaluate(() => window.client.clientId)).toBe(await first.evaluate(() => window.client.clientId));

    // A write in the follower tab is captured by the leader, pushed, and flush() in the follower waits for it.
    await sql(second, `INSERT INTO task (workspace_id, project_id, title) VALUES ($1, $2, 'from the second tab')`, [seed.workspaces.shared, seed.projects.launch]);
    await second.evaluate(() => window.client.flush());
    expect(await db.query(`SELECT 1 FROM task WHERE title = 'from the second tab'`)).toHaveLength(1);
    // The leader's events reach the follower.
    await db.query(`INSERT INTO task (workspace_id, project_id, title) VALUES ($1, $2, 'seen by both tabs')`, [seed.workspaces.shared, seed.projects.launch]);
    await waitFor('the follower to see it', async () => (await sql(second, `SELECT 1 FROM task WHERE title = 'seen by both tabs'`)).length === 1);
    await waitFor('the follower to hear pull:applied', () => second.evaluate(() => window.events.some((event) => event.name === 'pull:applied')));
    // The follower's statements go to the leader's worker and back: rows, Postgres' errors with their fields, live queries.
    expect(await second.evaluate(`window.client.db.query('SELECT * FROM no_such_table').then(() => 'ran', (error) => [error.code, error.message])`)).toEqual(['42P01', 'relation "no_such_table" does not exist']);
    expect(await second.evaluate(`window.client.db.exec('SELECT 1; SELECT 2').then((results) => results.map((result) => result.rows[0]))`)).toEqual([{ '?column?': 1 }, { '?column?': 2 }]);
    await second.evaluate(`window.client.db.live.query("SELECT count(*)::int AS n FROM task WHERE title = 'live in the follower'", [], (result) => (window.followerLive = result.rows[0].n))`);
    await sql(first, `INSERT INTO task (workspace_id, project_id, title) VALUES ($1, $2, 'live in the follower')`, [seed.workspaces.shared, seed.projects.launch]);
    await waitFor("the follower's live query to re-run", async () => (await second.evaluate('window.followerLive')) === 1);

    await first.evaluate(() => window.client.close());
    await first.close();
    await waitFor('the second tab to lead', () => second.evaluate(() => window.client.isLeader));
    await db.query(`INSERT INTO task (workspace_id, project_id, title) VALUES ($1, $2, 'after the handover')`, [seed.workspaces.shared, seed.projects.launch]);
    await waitFor('the new leader to sync', async () => (await sql(second, `SELECT 1 FROM task WHERE title = 'after the handover'`)).length === 1);
    // The live query the tab set up through the old leader goes on in the new one.
    await sql(second, `INSERT INTO task (workspace_id, project_id, title) VALUES ($1, $2, 'live in the follower')`, [seed.workspaces.shared, seed.projects.launch]);
    await waitFor("the follower's live query to go on after the handover", async () => (await second.evaluate('window.followerLive')) === 2);
    await sql(second, `INSERT INTO task (workspace_id, project_id, title) VALUES ($1, $2, 'pushed by the new leader')`, [seed.workspaces.shared, seed.projects.launch]);
    await second.evaluate(() => window.client.flush());
    expect(await db.query(`SELECT 1 FROM task WHERE title = 'pushed by the new leader'`)).toHaveLength(1);
    expect(await second.evaluate(() => window.events.filter((event) => event.name === 'error'))).toEqual([]);
    // The tab that stayed open never said it was closed (the old leader's close is not its own).
    expect(await second.evaluate(() => window.events.filter((event) => event.name === 'status').map((event) => event.args[0]))).not.toContain('closed');
  });

  it.runIf(storage === 'auto')("runs the leader tab's live queries in its worker: new rows, refresh, unsubscribe, and a busy tab never holds the replica", async () => {
    const browser = await launch('live');
    const leader = await browser.page(harness());
    await openClient(leader, { url: serverUrl(), token, dataDir: 'live', storage });
    await leader.evaluate(() => window.client.ready);
    const follower = await browser.page(harness());
    await openClient(follower, { url: serverUrl(), token, dataDir: 'live', storage });
    await follower.evaluate(() => window.client.ready);
    expect(await leader.evaluate(() => window.client.isLeader)).toBe(true);
    const count = `SELECT count(*)::int AS n FROM task WHERE title LIKE 'in the worker %'`;
    // Both forms of live.query: a callback per new result, and subscribe() for another one.
    expect(
      await leader.evaluate(async (count) => {
        window.seen = { first: [], second: [], options: [] };
        const query = await window.client.db.live.query<{ n: number }>(count, [], (result) => window.seen.first.push(result.rows[0]!.n));
        query.subscribe((result) => window.seen.second.push(result.rows[0]!.n));
        window.stopLive = () => query.unsubscribe();
        window.refreshLive = () => query.refresh();
        window.aborter = new AbortController();
        const options = await window.client.db.live.query<{ n: number }>({ query: count, callback: (result) => window.seen.options.push(result.rows[0]!.n), signal: window.aborter.signal });
        return [query.initialResults.rows[0]!.n, options.initialResults.rows[0]!.n];
      }, count),
    ).toEqual([0, 0]);
    const insert = (title: string) => sql(follower, `INSERT INTO task (workspace_id, project_id, title) VALUES ($1, $2, $3)`, [seed.workspaces.shared, seed.projects.launch, title]);
    await insert('in the worker 1');
    const last = (seen: Record<string, number[]>) => Object.values(seen).map((values) => values.at(-1));
    await waitFor('every live callback to see the new row', async () => last(await leader.evaluate(() => window.seen)).every((n) => n === 1));
    // The write's answer from the server re-runs them too: once it is in, refresh() runs them once more.
    await follower.evaluate(() => window.client.flush());
    await new Promise((resolve) => setTimeout(resolve, 300));
    const refreshed = (await leader.evaluate(() => window.seen)).first.length;
    await leader.evaluate(() => window.refreshLive());
    await waitFor('refresh() to run the query again', async () => (await leader.evaluate(() => window.seen)).first.length > refreshed);
    // Aborted and unsubscribed: no more results.
    await leader.evaluate(async () => {
      window.aborter.abort();
      await window.stopLive();
    });
    const before = await leader.evaluate(() => window.seen);
    await insert('in the worker 2');
    await follower.evaluate(() => window.client.flush());
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(await leader.evaluate(() => window.seen)).toEqual(before);
    expect(last(before)).toEqual([1, 1, 1]);

    // A live query set up while its tab is busy (a long render, say): the follower's statements do
    // not wait for the busy tab, since the set-up runs in the worker, not step by step from the tab.
    const answeredIn = follower.evaluate(async () => {
      await new Promise((resolve) => setTimeout(resolve, 200));
      const started = performance.now();
      await window.client.db.query('SELECT 1');
      return performance.now() - started;
    });
    await leader.evaluate(async (count) => {
      void window.client.db.live.query(count, [], () => undefined);
      await new Promise((resolve) => setTimeout(resolve, 0));
      const until = performance.now() + 2_000;
      while (performance.now() < until);
    }, count);
    expect(await answeredIn).toBeLessThan(1_000);
  });

  it('refuses a second walsync worker on a database another one holds (a Web Lock)', async () => {
    const browser = await launch('locked');
    const holder = await browser.page(harness());
    await openClient(holder, { url: serverUrl(), token, dataDir: 'idb://locked', storage });
    await holder.evaluate(() => window.client.ready);
    // Another copy of the worker that does not join the first one's election (another app version, say).
    const intruder = await browser.page(harness());
    const refusal = await intruder.evaluate(
      ([url, token]) =>
        new Promise<{ code?: string; message: string }>((resolve) => {
          const worker = new Worker('/dist/worker.js', { type: 'module' });
          worker.onmessage = ({ data }) => {
            if (data.type === 'here') worker.postMessage({ type: 'init', options: { dataDir: 'idb://locked', id: 'another-election', meta: { url, token } } });
            if (data.type === 'walsync:failed') resolve(data.error);
          };
        }),
      [serverUrl(), token] as const,
    );
    expect(refusal).toMatchObject({ code: 'locked', message: expect.stringMatching(/already open in another walsync client/) });
    // The holder goes on syncing.
    await db.query(`INSERT INTO task (workspace_id, project_id, title) VALUES ($1, $2, 'holder still syncs')`, [seed.workspaces.shared, seed.projects.launch]);
    await waitFor('the holder to sync', async () => (await sql(holder, `SELECT 1 FROM task WHERE title = 'holder still syncs'`)).length === 1);
  });

  it('keeps its data, position and outbox across a reload and a browser kill, and never acks what it has not stored', async () => {
    const profile = 'durable';
    let browser = await launch(profile);
    let page = await browser.page(harness());
    await openClient(page, { url: serverUrl(), token, dataDir: 'idb://durable', storage });
    await page.evaluate(() => window.client.ready);
    const clientId = await page.evaluate(() => window.client.clientId);
    await sql(page, `INSERT INTO task (workspace_id, project_id, title) VALUES ($1, $2, 'before the reload')`, [seed.workspaces.shared, seed.projects.launch]);
    await page.evaluate(() => window.client.flush());

    await page.reload();
    await openClient(page, { url: serverUrl(), token, dataDir: 'idb://durable', storage });
    await page.evaluate(() => window.client.ready);
    expect(await page.evaluate(() => window.client.clientId)).toBe(clientId);
    expect(await sql(page, `SELECT 1 FROM task WHERE title = 'before the reload'`)).toHaveLength(1);
    // After a reload the replica resumes: no second snapshot.
    expect(await page.evaluate(() => window.events.some((event) => event.name === 'bootstrap:start'))).toBe(false);

    // The server acks only what is in IndexedDB: kill the browser the moment the server records the ack.
    await db.query(`INSERT INTO task (workspace_id, project_id, title) SELECT $1, $2, 'acked ' || i FROM generate_series(1, 50) i`, [seed.workspaces.shared, seed.projects.launch]);
    const commit = await waitFor('capture', async () => (await db.query<{ lsn: string }>(`SELECT max(commit_lsn)::text AS lsn FROM change_history WHERE data->>'title' LIKE 'acked %' HAVING count(*) = 50`))[0]?.lsn);
    await waitFor(
      'the ack',
      async () => (await db.query(`SELECT 1 FROM sync_client WHERE client_id = $1 AND acked_commit_lsn >= $2`, [clientId, commit])).length === 1,
      20_000,
    );
    await browser.kill();

    browser = await launch(profile);
    page = await browser.page(harness());
    await openClient(page, { url: 'http://127.0.0.1:1', token, dataDir: 'idb://durable', storage });
    expect((await sql<{ n: number }>(page, `SELECT count(*)::int AS n FROM task WHERE title LIKE 'acked %'`))[0]!.n).toBe(50);

    // A write made offline, then a browser kill: the row and its outbox entry survive, and are pushed later.
    await sql(page, `INSERT INTO task (workspace_id, project_id, title) VALUES ($1, $2, 'written offline')`, [seed.workspaces.shared, seed.projects.launch]);
    await page.evaluate(() => window.client.durable());
    await browser.kill();
    browser = await launch(profile);
    page = await browser.page(harness());
    await openClient(page, { url: serverUrl(), token, dataDir: 'idb://durable', storage });
    await page.evaluate(() => window.client.ready);
    await page.evaluate(() => window.client.flush());
    expect(await db.query(`SELECT 1 FROM task WHERE title = 'written offline'`)).toHaveLength(1);
    expect((await sql<{ n: number }>(page, `SELECT count(*)::int AS n FROM walsync_outbox`))[0]!.n).toBe(0);
    expect(await page.evaluate(() => window.client.clientId)).toBe(clientId);
  });

  it('shows a subscription\'s rows to live queries already running when they arrive, and their leaving', async () => {
    const browser = await launch('live-subscription');
    const page = await browser.page(harness());
    await openClient(page, { url: serverUrl(), token, dataDir: 'idb://live-subscription', storage, subscriptions: [] });
    await page.evaluate(() => window.client.ready);
    const project = seed.projects.launch;
    // A board's query, running before the project is held (as a screen that subscribes to what it shows).
    await page.evaluate(async (project) => {
      const shown: string[] = [];
      (window as unknown as { shown: string[] }).shown = shown;
      await window.client.db.live.query<{ title: string }>(`SELECT title FROM task WHERE project_id = $1 AND deleted_at IS NULL ORDER BY title`, [project], (result) => {
        shown.splice(0, shown.length, ...result.rows.map((row) => row.title));
      });
    }, project);
    const shown = () => page.evaluate(() => [...(window as unknown as { shown: string[] }).shown]);
    expect(await shown()).toEqual([]);
    await db.query(`INSERT INTO task (workspace_id, project_id, title) SELECT $1, $2, 'held ' || n FROM generate_series(1, 3) n`, [seed.workspaces.shared, project]);
    const titles = (await db.query<{ title: string }>(`SELECT title FROM task WHERE project_id = $1 AND deleted_at IS NULL ORDER BY title`, [project])).map((row) => row.title);
    await page.evaluate((project) => window.client.subscribe('project', { projectId: project }).ready, project);
    await waitFor('the live query to show the subscription\'s rows', async () => JSON.stringify(await shown()) === JSON.stringify(titles));
    await page.evaluate((project) => window.client.unsubscribe('project', { projectId: project }), project);
    await waitFor('the live query to show them gone', async () => (await shown()).length === 0);
    await page.evaluate(() => window.client.close());
  });

  it('opens its replica while the server of PGlite\'s own files is away (their stored copy)', async () => {
    const browser = await launch('artifacts');
    const page = await browser.page(harness());
    await openClient(page, { url: serverUrl(), token, dataDir: 'idb://artifacts', storage });
    await page.evaluate(() => window.client.ready);
    const rows = (await sql<{ n: number }>(page, `SELECT count(*)::int AS n FROM project`))[0]!.n;
    expect(rows).toBeGreaterThan(0);
    await page.evaluate(() => window.client.close());
    // PGlite fetches its WASM Postgres, its data bundle and initdb at every start: now they fail.
    web.refuse(/\/(pglite\.wasm|pglite\.data|initdb\.wasm)$/);
    const before = web.refused;
    try {
      await openClient(page, { url: serverUrl(), token, dataDir: 'idb://artifacts', storage });
      await page.evaluate(() => window.client.ready);
    } finally {
      web.refuse(undefined);
    }
    expect(web.refused).toBeGreaterThan(before);
    expect((await sql<{ n: number }>(page, `SELECT count(*)::int AS n FROM project`))[0]!.n).toBe(rows);
    expect(await page.evaluate(() => window.events.filter((event) => event.name === 'error'))).toEqual([]);
    await page.evaluate(() => window.client.close());
  });

  it.runIf(storage === 'auto')('refuses a dataDir that is not a replica name and a storage it does not know, before a worker starts', async () => {
    const browser = await launch('refusals');
    const page = await browser.page(harness());
    await page.waitForFunction(() => document.title === 'ready');
    const refusal = (options: Record<string, string>) =>
      page.evaluate((options) => window.walsync.createSyncClient(options as never).then(() => 'opened', (error: Error) => `${error.name}: ${error.message}`), options);
    expect(await refusal({ url: 'http://127.0.0.1:1', token, dataDir: 'file:///etc' })).toMatch(/^TypeError: dataDir must be a replica name/);
    expect(await refusal({ url: 'http://127.0.0.1:1', token, dataDir: 'ok', storage: 'localStorage' })).toMatch(/^TypeError: storage must be one of auto, opfs, indexeddb/);
  });

  it.runIf(storage === 'auto')('hands the tab its client before the worker has loaded: statements wait for the replica, a worker that cannot load fails them', async () => {
    const browser = await launch('early');
    const page = await browser.page(harness());
    await page.waitForFunction(() => document.title === 'ready');
    // The worker's script held back: the page still gets its client (and paints its last view meanwhile).
    const release = web.hold(/\/dist\/worker\.js/);
    try {
      await openClient(page, { url: serverUrl(), token, dataDir: 'early', storage });
      await page.evaluate(() => {
        window.early = window.client.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM workspace`).then((result) => result.rows[0]!.n);
        window.earlySettled = false;
        void window.early.finally(() => (window.earlySettled = true));
      });
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(await page.evaluate(() => window.earlySettled)).toBe(false);
    } finally {
      release();
    }
    expect(await page.evaluate(() => window.early)).toBeGreaterThanOrEqual(0);
    await page.evaluate(() => window.client.ready);
    expect(await page.evaluate(() => window.early.then(() => window.client.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM workspace`)).then((result) => result.rows[0]!.n))).toBeGreaterThanOrEqual(1);
    await page.evaluate(() => window.client.close());

    // A worker that never loads: the client's ready and its statements fail with a clear error, not hang.
    web.refuse(/\/dist\/worker\.js/);
    try {
      const other = await browser.page(harness());
      await openClient(other, { url: serverUrl(), token, dataDir: 'no-worker', storage });
      const outcome = await other.evaluate(() =>
        Promise.all([window.client.ready.then(() => 'ready', (error: Error) => error.message), window.client.db.query('SELECT 1').then(() => 'answered', (error: Error) => error.message)]),
      );
      expect(outcome).toEqual([expect.stringMatching(/the walsync worker could not start/), expect.stringMatching(/the walsync worker could not start/)]);
    } finally {
      web.refuse(undefined);
    }
  });

  it.runIf(storage === 'auto')("starts PGlite's files and a new replica's template from the worker's small first module, before its main module has loaded", async () => {
    const browser = await launch('bootstrap');
    const page = await browser.page(harness());
    await page.waitForFunction(() => document.title === 'ready');
    const from = web.requests.length;
    const release = web.hold(/\/dist\/worker-main\.js/);
    try {
      await openClient(page, { url: serverUrl(), token, dataDir: 'bootstrap', storage });
      await waitFor("the bootstrap's fetches", () => ['/dist/pglite.wasm', '/dist/pglite.data', '/dist/replica.tar.gz'].every((file) => web.requests.slice(from).includes(file)));
      expect(web.requests.slice(from).filter((url) => url.startsWith('/dist/worker'))).toEqual([expect.stringMatching(/^\/dist\/worker\.js\?replica=bootstrap&boot=[0-9a-f-]{36}$/), '/dist/worker-main.js']);
    } finally {
      release();
    }
    await page.evaluate(() => window.client.ready);
    // The main module used them: nothing fetched twice.
    expect(web.requests.slice(from).filter((url) => url === '/dist/pglite.wasm')).toHaveLength(1);
    expect((await sql<{ n: number }>(page, `SELECT count(*)::int AS n FROM project`))[0]!.n).toBeGreaterThan(0);
    await page.evaluate(() => window.client.close());
  });

  it.runIf(storage === 'auto')('moves an IndexedDB replica to OPFS once, with its rows, position, client id and unsent writes', async () => {
    const browser = await launch('move');
    let page = await browser.page(harness());
    await openClient(page, { url: serverUrl(), token, dataDir: 'moved', storage: 'indexeddb' });
    await page.evaluate(() => window.client.ready);
    expect(await page.evaluate(() => window.client.storage)).toBe('indexeddb');
    const clientId = await page.evaluate(() => window.client.clientId);
    const rows = await sql(page, `SELECT id, title FROM task ORDER BY id`);
    const position = await sql<{ value: string }>(page, `SELECT value FROM walsync_state WHERE key = 'position'`);
    await page.evaluate(() => window.client.close());
    // An unsent write: made while the server cannot be reached.
    await page.reload();
    await openClient(page, { url: 'http://127.0.0.1:1', token, dataDir: 'moved', storage: 'indexeddb' });
    await sql(page, `INSERT INTO task (workspace_id, project_id, title) VALUES ($1, $2, 'unsent before the move')`, [seed.workspaces.shared, seed.projects.launch]);
    await page.evaluate(() => window.client.close());

    await page.reload();
    await openClient(page, { url: serverUrl(), token, dataDir: 'moved' });
    await page.evaluate(() => window.client.ready);
    expect(await page.evaluate(() => window.client.storage)).toBe('opfs');
    expect(await page.evaluate(() => window.client.clientId)).toBe(clientId);
    // Resumed from the stored position: no second snapshot.
    expect(await page.evaluate(() => window.events.some((event) => event.name === 'bootstrap:start'))).toBe(false);
    expect(await sql(page, `SELECT id, title FROM task WHERE title <> 'unsent before the move' ORDER BY id`)).toEqual(rows);
    expect((await sql<{ value: string }>(page, `SELECT value FROM walsync_state WHERE key = 'position'`))[0]!.value >= position[0]!.value).toBe(true);
    await page.evaluate(() => window.client.flush());
    expect(await db.query(`SELECT 1 FROM task WHERE title = 'unsent before the move'`)).toHaveLength(1);
    // Moved once: the IndexedDB copy is gone, and a reload opens the OPFS replica as it is.
    expect(await page.evaluate(async () => (await indexedDB.databases()).map((database) => database.name))).not.toContain('/pglite/moved');
    await page.evaluate(() => window.client.close());
    await page.reload();
    await openClient(page, { url: serverUrl(), token, dataDir: 'moved' });
    await page.evaluate(() => window.client.ready);
    expect(await sql(page, `SELECT 1 FROM task WHERE title = 'unsent before the move'`)).toHaveLength(1);
    expect(await page.evaluate(() => window.client.clientId)).toBe(clientId);
  });
});
