import { type Server, type Socket, connect, createServer } from 'node:net';
import path from 'node:path';
import { Tokens } from '@walsync/server';
import { type SyncFixture, TEST_JWT_SECRET, startSyncFixture, waitFor } from '@walsync/test-support';
import { type SyncClient, SyncClientError, createSyncClient } from '@walsync/web';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * Partial sync (issue #19): a client that names subscriptions holds exactly their rows (and the
 * workspace rows they need), follows rows in and out of them live, adds and drops subscriptions,
 * and resumes them from its replica.
 */
describe('a client holding named subscriptions', () => {
  let fixture: SyncFixture;
  let second: string;

  beforeAll(async () => {
    fixture = await startSyncFixture('partial-sync');
    const { db, seed } = fixture;
    [{ id: second }] = (await db.query<{ id: string }>(`INSERT INTO project (workspace_id, name) VALUES ($1, 'Second') RETURNING id`, [seed.workspaces.shared])) as [{ id: string }];
  });
  afterAll(async () => {
    await fixture?.dispose();
  });

  const titles = async (client: SyncClient, where = 'true') =>
    (await client.db.query<{ title: string }>(`SELECT title FROM task WHERE deleted_at IS NULL AND ${where} ORDER BY title`)).rows.map((row) => row.title);
  const serverTitles = async (projectId: string) =>
    (await fixture.db.query<{ title: string }>(`SELECT title FROM task WHERE project_id = $1 AND deleted_at IS NULL ORDER BY title`, [projectId])).map((row) => row.title);
  const addTask = (projectId: string, title: string) =>
    fixture.db.query<{ id: string }>(`INSERT INTO task (workspace_id, project_id, title) VALUES ($1, $2, $3) RETURNING id`, [fixture.seed.workspaces.shared, projectId, title]);
  const sameAs = async (client: SyncClient, projectId: string) => JSON.stringify(await titles(client)) === JSON.stringify(await serverTitles(projectId));
  /** A new task `title` in the launch project, and a client holding that project that has it (its `error` events collected). */
  const launchTaskHeld = async (title: string) => {
    const { seed, url, token } = fixture;
    const [task] = await addTask(seed.projects.launch, title);
    const client = await createSyncClient({ url, token, dataDir: 'memory://', subscriptions: [{ name: 'project', params: { projectId: seed.projects.launch } }] });
    const errors: Error[] = [];
    client.on('error', (error) => errors.push(error));
    try {
      await client.ready;
      await waitFor('the task in the replica', async () => (await titles(client)).includes(title));
    } catch (error) {
      await client.close();
      throw error;
    }
    return { task: task!, client, errors };
  };

  /**
   * Holds capture back (`holder` keeps `change_history` locked until the caller commits) while the
   * task leaves the launch project and comes back, then `client` comments on it; returns once the
   * comment is answered (stored from its answer), before the stream brought any of it. The moves are
   * one transaction (one batch), or `apartIn` a project: 6,000 tasks go there between them, more than
   * the stream reads at once, so the move back comes in a later batch. Returns the comment's id.
   */
  const movedOutAndBack = async (holder: { query(sql: string): Promise<unknown> }, client: SyncClient, taskId: string, body: string, apartIn?: string) => {
    const { seed, db } = fixture;
    await holder.query(`BEGIN; LOCK TABLE change_history IN SHARE MODE`);
    if (apartIn) {
      await db.query(`UPDATE task SET project_id = $1 WHERE id = $2`, [second, taskId]);
      await db.query(`INSERT INTO task (workspace_id, project_id, title) SELECT $1, $2, 'elsewhere ' || n FROM generate_series(1, 6000) n`, [seed.workspaces.shared, apartIn]);
      await db.query(`UPDATE task SET project_id = $1 WHERE id = $2`, [seed.projects.launch, taskId]);
    } else {
      await db.pool.query(`BEGIN; UPDATE task SET project_id = '${second}' WHERE id = '${taskId}'; UPDATE task SET project_id = '${seed.projects.launch}' WHERE id = '${taskId}'; COMMIT`);
    }
    const [{ id: comment }] = (await client.db.query<{ id: string }>(`INSERT INTO comment (workspace_id, task_id, author_id, body) VALUES ($1, $2, $3, $4) RETURNING id`, [seed.workspaces.shared, taskId, seed.users.alice, body]))
      .rows as [{ id: string }];
    await waitFor('the comment answered', async () => (await client.db.query(`SELECT 1 FROM walsync_outbox`)).rows.length === 0);
    return comment;
  };

  it('holds exactly one project of two, follows tasks and their comments in and out live, and adds a second project', async () => {
    const { seed, url, token, db } = fixture;
    const launch = seed.projects.launch;
    const [kept] = await addTask(launch, 'launch: kept');
    await addTask(second, 'second: not held');
    await db.query(`INSERT INTO comment (workspace_id, task_id, author_id, body) VALUES ($1, $2, $3, 'on a launch task')`, [seed.workspaces.shared, kept!.id, seed.users.alice]);

    const progress: Array<{ table: string; sent: number; total: number; subscription?: { name: string } }> = [];
    const client = await createSyncClient({ url, token, dataDir: 'memory://', subscriptions: [{ name: 'project', params: { projectId: launch } }] });
    try {
      await client.ready;
      expect(await titles(client)).toEqual(await serverTitles(launch));
      expect(await titles(client)).not.toContain('second: not held');
      // What the rows need: the user's workspaces, their members and projects (the parents of every task), whole.
      expect((await client.db.query(`SELECT id FROM workspace`)).rows).toEqual([{ id: seed.workspaces.shared }]);
      expect((await client.db.query<{ id: string }>(`SELECT id FROM project ORDER BY name`)).rows.map((row) => row.id)).toEqual([launch, second]);
      expect((await client.db.query(`SELECT 1 FROM workspace_member`)).rows.length).toBe(2);
      expect((await client.db.query(`SELECT body FROM comment`)).rows).toEqual([{ body: 'on a launch task' }]);

      // Live: an insert into the held project arrives, one into the other does not.
      await addTask(launch, 'launch: live');
      const [moving] = await addTask(second, 'second: moves in');
      await waitFor('the live insert', async () => (await titles(client)).includes('launch: live'));
      await addTask(launch, 'launch: marker');
      await waitFor('the marker', async () => (await titles(client)).includes('launch: marker'));
      expect(await titles(client)).not.toContain('second: moves in');

      // A task moved in arrives whole; one moved out leaves, and its comments follow it (triggers keep comment.project_id).
      await db.query(`UPDATE task SET project_id = $1 WHERE id = $2`, [launch, moving!.id]);
      await waitFor('the task moved in', async () => (await titles(client)).includes('second: moves in'));
      await db.query(`UPDATE task SET project_id = $1 WHERE id = $2`, [second, kept!.id]);
      await waitFor('the task moved out, with its comment', async () => !(await titles(client)).includes('launch: kept') && (await client.db.query(`SELECT 1 FROM comment`)).rows.length === 0);
      expect((await db.query<{ project_id: string }>(`SELECT project_id FROM comment WHERE task_id = $1`, [kept!.id]))[0]!.project_id).toBe(second);

      // A second project, subscribed live: its rows arrive with progress events naming it.
      client.on('bootstrap:progress', (event) => progress.push(event));
      const secondProject = client.subscribe('project', { projectId: second });
      await secondProject.ready;
      expect(await titles(client, `project_id = '${second}'`)).toEqual(await serverTitles(second));
      expect(await titles(client, `project_id = '${second}'`)).toContain('launch: kept');
      expect((await client.db.query(`SELECT body FROM comment`)).rows).toEqual([{ body: 'on a launch task' }]);
      const taskProgress = progress.filter((event) => event.table === 'task');
      expect(taskProgress.at(-1)).toMatchObject({ sent: (await serverTitles(second)).length, total: (await serverTitles(second)).length, subscription: { name: 'project' } });
      await addTask(second, 'second: live');
      await waitFor('a live insert into the second project', async () => (await titles(client)).includes('second: live'));
    } finally {
      await client.close();
    }
  });

  it('follows a task moved through the write API by another client, in and out, and the mover gets its comments as the server changed them', async () => {
    const { seed, url, db } = fixture;
    const launch = seed.projects.launch;
    const [task] = await addTask(second, 'moved by bob');
    await db.query(`INSERT INTO comment (workspace_id, task_id, author_id, body) VALUES ($1, $2, $3, 'follows its task')`, [seed.workspaces.shared, task!.id, seed.users.alice]);
    const comment = `SELECT body, project_id::text, version, hlc FROM comment WHERE task_id = $1`;
    const bobToken = await new Tokens(TEST_JWT_SECRET).issue(seed.users.bob);
    const alice = await createSyncClient({ url, token: fixture.token, dataDir: 'memory://', subscriptions: [{ name: 'project', params: { projectId: launch } }] });
    const bob = await createSyncClient({ url, token: bobToken, dataDir: 'memory://' });
    try {
      await Promise.all([alice.ready, bob.ready]);
      await waitFor('bob holds the task', async () => (await bob.db.query(`SELECT 1 FROM task WHERE id = $1`, [task!.id])).rows.length === 1);
      expect(await titles(alice)).not.toContain('moved by bob');
      await bob.db.query(`UPDATE task SET project_id = $1 WHERE id = $2`, [launch, task!.id]);
      await bob.flush();
      await waitFor('the task moved in through the write API', async () => (await titles(alice)).includes('moved by bob'));
      // The server's triggers moved the comment along (a change of the server's, not of bob's write): both replicas have it as the server does.
      const [moved] = await db.query<{ project_id: string; version: number }>(comment, [task!.id]);
      expect(moved).toMatchObject({ project_id: launch, version: 2 });
      await waitFor('the comment, as the server has it, in bob\'s replica', async () => JSON.stringify((await bob.db.query(comment, [task!.id])).rows) === JSON.stringify([moved]));
      await waitFor('and in alice\'s', async () => JSON.stringify((await alice.db.query(comment, [task!.id])).rows) === JSON.stringify([moved]));
      expect(await bob.db.query(`SELECT table_name FROM walsync_outbox`)).toMatchObject({ rows: [] });
      await bob.db.query(`UPDATE task SET project_id = $1 WHERE id = $2`, [second, task!.id]);
      await bob.flush();
      await waitFor('the task moved out through the write API', async () => !(await titles(alice)).includes('moved by bob'));
      expect((await db.query<{ project_id: string }>(`SELECT project_id FROM task WHERE id = $1`, [task!.id]))[0]!.project_id).toBe(second);
    } finally {
      await Promise.all([alice.close(), bob.close()]);
    }
  });

  it('a comment written as its task moves to another project follows the task: the holders of the old project get neither, and stay in sync', async () => {
    const { seed, url, token, db } = fixture;
    const launch = seed.projects.launch;
    const [task] = await addTask(launch, 'moves as it is commented');
    const client = await createSyncClient({ url, token, dataDir: 'memory://', subscriptions: [{ name: 'project', params: { projectId: launch } }] });
    const errors: string[] = [];
    client.on('error', (error) => errors.push(error.message));
    const [mover, commenter] = [await db.pool.connect(), await db.pool.connect()];
    try {
      await client.ready;
      await waitFor('the client holds the task', async () => (await titles(client)).includes('moves as it is commented'));
      // The move is made but not committed when the comment is written (READ COMMITTED: the comment's
      // trigger would read the task's old project, and the move's trigger does not see the comment).
      await mover.query('BEGIN');
      await mover.query(`UPDATE task SET project_id = $1 WHERE id = $2`, [second, task!.id]);
      const commented = commenter.query(`INSERT INTO comment (workspace_id, task_id, author_id, body) VALUES ($1, $2, $3, 'written during the move')`, [seed.workspaces.shared, task!.id, seed.users.alice]);
      await new Promise((resolve) => setTimeout(resolve, 300));
      await mover.query('COMMIT');
      await commented;
      expect((await db.query<{ project_id: string }>(`SELECT project_id::text FROM comment WHERE task_id = $1`, [task!.id])).map((row) => row.project_id)).toEqual([second]);
      // The other order: the comment is written but not committed when the task moves back.
      await commenter.query('BEGIN');
      await commenter.query(`INSERT INTO comment (workspace_id, task_id, author_id, body) VALUES ($1, $2, $3, 'written before the move back')`, [seed.workspaces.shared, task!.id, seed.users.alice]);
      const movedBack = mover.query(`UPDATE task SET project_id = $1 WHERE id = $2`, [launch, task!.id]);
      await new Promise((resolve) => setTimeout(resolve, 300));
      await commenter.query('COMMIT');
      await movedBack;
      expect((await db.query<{ project_id: string }>(`SELECT project_id::text FROM comment WHERE task_id = $1`, [task!.id])).map((row) => row.project_id)).toEqual([launch, launch]);
      await waitFor('the task and both comments back', async () => (await client.db.query(`SELECT 1 FROM comment WHERE task_id = $1`, [task!.id])).rows.length === 2);
      await mover.query(`UPDATE task SET project_id = $1 WHERE id = $2`, [second, task!.id]);
      // The client lost the task with the move, and is not sent a comment of a task it does not hold.
      await waitFor('the task moved out', async () => !(await titles(client)).includes('moves as it is commented'));
      await addTask(launch, 'after the move');
      await waitFor('a later change', async () => (await titles(client)).includes('after the move'));
      expect((await client.db.query(`SELECT 1 FROM comment WHERE task_id = $1`, [task!.id])).rows).toEqual([]);
      expect(errors).toEqual([]);
      expect(client.status).toBe('up-to-date');
    } finally {
      mover.release();
      commenter.release();
      await client.close();
    }
  });

  it('refuses a subscription outside the user scope, an unknown one and bad parameters, delivering nothing', async () => {
    const { seed, url, token } = fixture;
    const client = await createSyncClient({ url, token, dataDir: 'memory://', subscriptions: [] });
    const errors: Error[] = [];
    client.on('error', (error) => errors.push(error));
    try {
      await client.ready;
      const carols = client.subscribe('project', { projectId: seed.projects.secret });
      await expect(carols.ready).rejects.toSatisfy((error) => SyncClientError.is(error, 'subscription_refused') && /forbidden/.test((error as Error).message));
      // A project id that does not exist gets the same answer (ids cannot be probed).
      const missing = client.subscribe('project', { projectId: '00000000-0000-4000-8000-000000000000' });
      await expect(missing.ready).rejects.toSatisfy((error) => SyncClientError.is(error, 'subscription_refused') && /forbidden/.test((error as Error).message));
      await expect(client.subscribe('nope' as 'project', { projectId: seed.projects.launch }).ready).rejects.toSatisfy((error) => SyncClientError.is(error, 'invalid_subscription'));
      await expect(client.subscribe('project', { projectId: 'not-a-uuid' }).ready).rejects.toSatisfy((error) => SyncClientError.is(error, 'invalid_subscription'));
      expect((await client.db.query(`SELECT 1 FROM task`)).rows).toEqual([]);
      expect((await client.db.query(`SELECT 1 FROM comment`)).rows).toEqual([]);
      // The projects of the user's own workspace are held whole; carol's is not.
      expect((await client.db.query(`SELECT 1 FROM project WHERE id = $1`, [seed.projects.secret])).rows).toEqual([]);
      expect((await client.db.query(`SELECT 1 FROM walsync_subscription`)).rows).toEqual([]);
      expect(errors.filter((error) => SyncClientError.is(error, 'subscription_refused'))).toHaveLength(2);
    } finally {
      await client.close();
    }
  });

  it('unsubscribes only what no other subscription holds, keeping unsent rows until they are answered', async () => {
    const { seed, url, token, db } = fixture;
    const launch = seed.projects.launch;
    const [linked] = await addTask(launch, 'launch: also held by a task subscription');
    await db.query(`INSERT INTO comment (workspace_id, task_id, author_id, body) VALUES ($1, $2, $3, 'on the linked task')`, [seed.workspaces.shared, linked!.id, seed.users.alice]);
    const client = await createSyncClient({
      url,
      token,
      dataDir: 'memory://',
      subscriptions: [
        { name: 'project', params: { projectId: launch } },
        { name: 'task', params: { taskId: linked!.id } },
      ],
    });
    try {
      await client.ready;
      expect(await sameAs(client, launch)).toBe(true);
      // Offline: a local write to a launch task is unsent when the project is dropped.
      await fixture.stopServer();
      await waitFor('offline', () => client.status === 'offline');
      const [unsent] = (await client.db.query<{ id: string }>(`INSERT INTO task (workspace_id, project_id, title) VALUES ($1, $2, 'written offline') RETURNING id`, [seed.workspaces.shared, launch])).rows;
      await client.subscribe('project', { projectId: launch }).unsubscribe();
      // The task the other subscription holds stays, with its comment; the unsent one stays until answered.
      expect(await titles(client)).toEqual(['launch: also held by a task subscription', 'written offline']);
      expect((await client.db.query(`SELECT body FROM comment`)).rows).toEqual([{ body: 'on the linked task' }]);
      await fixture.startServer();
      await client.flush();
      await waitFor('the answered row to go', async () => !(await titles(client)).includes('written offline'));
      expect(await titles(client)).toEqual(['launch: also held by a task subscription']);
      expect((await fixture.db.query(`SELECT title FROM task WHERE id = $1`, [unsent!.id]))[0]).toEqual({ title: 'written offline' });
      // Nothing more of the project arrives; the linked task still does.
      await addTask(launch, 'launch: after the unsubscribe');
      await db.query(`UPDATE task SET title = 'linked, renamed' WHERE id = $1`, [linked!.id]);
      await waitFor('the linked task renamed', async () => (await titles(client)).includes('linked, renamed'));
      expect(await titles(client)).toEqual(['linked, renamed']);
    } finally {
      await client.close();
    }
  });

  it('unsubscribes a project while a comment on one of its tasks is unsent: the comment is answered, then goes, and nothing fails', async () => {
    const { seed, db } = fixture;
    const { task, client, errors } = await launchTaskHeld('launch: commented while offline');
    try {
      await fixture.stopServer();
      await waitFor('offline', () => client.status === 'offline');
      const [{ id: comment }] = (await client.db.query<{ id: string }>(
        `INSERT INTO comment (workspace_id, task_id, author_id, body) VALUES ($1, $2, $3, 'unsent as the project goes') RETURNING id`,
        [seed.workspaces.shared, task.id, seed.users.alice],
      )).rows as [{ id: string }];
      await client.subscribe('project', { projectId: seed.projects.launch }).unsubscribe();
      await fixture.startServer();
      await client.flush();
      expect((await db.query(`SELECT body FROM comment WHERE id = $1`, [comment]))[0]).toEqual({ body: 'unsent as the project goes' });
      await waitFor('the outbox answered', async () => (await client.db.query(`SELECT 1 FROM walsync_outbox`)).rows.length === 0);
      expect((await client.db.query(`SELECT 1 FROM comment WHERE id = $1`, [comment])).rows).toEqual([]);
      expect(errors).toEqual([]);
    } finally {
      await client.close();
    }
  });

  it('unsubscribed while the session starts (its hello named the subscription): the rows the server streamed until then go too', async () => {
    const { seed, url, token, scratch } = fixture;
    const dataDir = path.join(scratch.dir, 'unsubscribes-at-hello');
    let client = await createSyncClient({ url, token, dataDir, subscriptions: [{ name: 'project', params: { projectId: second } }] });
    await client.ready;
    await client.close();
    // The server's answers wait in a relay: the client sends its hello (naming the subscription) and hears nothing yet.
    const relay = await HeldRelay.open(Number(new URL(url).port));
    client = await createSyncClient({ url: relay.url, token, dataDir });
    try {
      await waitFor('the server to answer the hello', () => relay.heldBytes > 0);
      await addTask(second, 'second: streamed before the unsubscribe');
      const leaving = client.unsubscribe('project', { projectId: second });
      relay.release();
      await leaving;
      await waitFor('live', () => client.status === 'up-to-date');
      await addTask(seed.projects.launch, 'launch: after the unsubscribe');
      await client.flush();
      // Every row of the dropped project went, the one streamed at hello too, and nothing of it arrives.
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(await titles(client, `project_id = '${second}'`)).toEqual([]);
      expect((await client.db.query(`SELECT * FROM walsync_subscription`)).rows).toEqual([]);
    } finally {
      await client.close();
      await relay.close();
    }
  });

  it('writes outside its subscriptions: the row stays local until answered, then leaves', async () => {
    const { seed, url, token, db } = fixture;
    const client = await createSyncClient({ url, token, dataDir: 'memory://', subscriptions: [{ name: 'project', params: { projectId: seed.projects.launch } }] });
    try {
      await client.ready;
      await client.db.query(`INSERT INTO task (workspace_id, project_id, title) VALUES ($1, $2, 'into the second project')`, [seed.workspaces.shared, second]);
      await client.flush();
      expect((await db.query(`SELECT 1 FROM task WHERE title = 'into the second project'`)).length).toBe(1);
      expect(await titles(client)).not.toContain('into the second project');
    } finally {
      await client.close();
    }
  });

  it.each([
    ['in one transaction (one batch: its removal, then the whole task)', false],
    ['in one batch and back in a later one', true],
  ] as const)('keeps its own comment on a task that left its project and came back %s, before the stream brought it', async (when, apart) => {
    const { seed, db } = fixture;
    const { task, client, errors } = await launchTaskHeld(`leaves and comes back ${when}`);
    const [{ id: elsewhere }] = (await db.query<{ id: string }>(`INSERT INTO project (workspace_id, name) VALUES ($1, $2) RETURNING id`, [seed.workspaces.shared, `elsewhere ${when}`])) as [{ id: string }];
    const holder = await db.pool.connect();
    try {
      const comment = await movedOutAndBack(holder, client, task.id, 'written after both moves', apart ? elsewhere : undefined);
      await holder.query(`COMMIT`);
      // The stream brings the task's move out and back in (the comment, the client's own write, it skipped before).
      await addTask(seed.projects.launch, `after the moves ${when}`);
      await waitFor('the stream past the moves', async () => (await titles(client)).includes(`after the moves ${when}`), 30_000);
      expect((await db.query(`SELECT project_id FROM comment WHERE id = $1`, [comment]))[0]).toEqual({ project_id: seed.projects.launch });
      expect((await client.db.query(`SELECT body FROM comment WHERE id = $1`, [comment])).rows).toEqual([{ body: 'written after both moves' }]);
      expect(errors).toEqual([]);
    } finally {
      await holder.query(`ROLLBACK`).catch(() => undefined);
      holder.release();
      await client.close();
      await db.query(`DELETE FROM task WHERE project_id = $1`, [elsewhere]);
    }
  });

  it('keeps its own comment when the task left in one session and came back in the next, before the stream brought either', async () => {
    const { seed, url, token, db, scratch } = fixture;
    const dataDir = path.join(scratch.dir, 'leaves-across-sessions');
    const [task] = await addTask(seed.projects.launch, 'leaves, comes back next session');
    const [{ id: third }] = (await db.query<{ id: string }>(`INSERT INTO project (workspace_id, name) VALUES ($1, 'Fourth') RETURNING id`, [seed.workspaces.shared])) as [{ id: string }];
    const relay = await HeldRelay.open(Number(new URL(url).port));
    relay.release();
    let client = await createSyncClient({ url: relay.url, token, dataDir, subscriptions: [{ name: 'project', params: { projectId: seed.projects.launch } }] });
    const holder = await db.pool.connect();
    let comment = '';
    try {
      await client.ready;
      await waitFor('the task in the replica', async () => (await titles(client)).includes('leaves, comes back next session'));
      // The move out in one batch, the move back in a later one.
      comment = await movedOutAndBack(holder, client, task!.id, 'written after both moves, away after the first', third);
      // The session ends once the client has the move out (its batch removes the task, and with it the comment).
      relay.cutAfter((text) => text.includes('"type":"changes"') && text.includes(task!.id));
      await holder.query(`COMMIT`);
      await waitFor('the task removed', async () => (await client.db.query(`SELECT 1 FROM task WHERE id = $1`, [task!.id])).rows.length === 0);
      expect((await client.db.query(`SELECT 1 FROM comment WHERE id = $1`, [comment])).rows).toEqual([]);
      await client.close();
      // The next session: the stream brings the move back in; the comment, the client's own write, it sends too.
      client = await createSyncClient({ url, token, dataDir });
      await client.ready;
      await addTask(seed.projects.launch, 'after the move back');
      await waitFor('the stream past the moves', async () => (await titles(client)).includes('after the move back'), 30_000);
      expect((await client.db.query(`SELECT body FROM comment WHERE id = $1`, [comment])).rows).toEqual([{ body: 'written after both moves, away after the first' }]);
    } finally {
      await holder.query(`ROLLBACK`).catch(() => undefined);
      holder.release();
      await client.close();
      await relay.close();
      await db.query(`DELETE FROM task WHERE project_id = $1`, [third]);
    }
  });

  it("keeps its own comment on a task whose move the server overruled, while the task's next write is still unsent", async () => {
    const { seed, url, token, db } = fixture;
    const dataDir = path.join(fixture.scratch.dir, 'overruled');
    const [task] = await addTask(seed.projects.launch, 'moved, overruled');
    let client = await createSyncClient({ url, token, dataDir, subscriptions: [{ name: 'project', params: { projectId: seed.projects.launch } }] });
    await client.ready;
    await waitFor('the task in the replica', async () => (await titles(client)).includes('moved, overruled'));
    await client.close();
    await fixture.stopServer();
    let comment = '';
    try {
      // Offline: the client moves the task to the second project and comments on it; 498 other writes
      // follow, then one more write of the task, so that it goes in the second push (500 changes a push).
      client = await createSyncClient({ url, token, dataDir });
      await client.db.query(`UPDATE task SET project_id = $1 WHERE id = $2`, [second, task!.id]);
      [{ id: comment }] = (await client.db.query<{ id: string }>(
        `INSERT INTO comment (workspace_id, task_id, author_id, body) VALUES ($1, $2, $3, 'on a task moved back') RETURNING id`,
        [seed.workspaces.shared, task!.id, seed.users.alice],
      )).rows as [{ id: string }];
      await client.db.query(`INSERT INTO task (workspace_id, project_id, title) SELECT $1, $2, 'filler ' || n FROM generate_series(1, 498) n`, [seed.workspaces.shared, seed.projects.launch]);
      await client.db.query(`UPDATE task SET title = 'moved, overruled, renamed' WHERE id = $1`, [task!.id]);
      // Meanwhile the task's project is written on the server after the client's move: the server's clock wins.
      await db.query(`UPDATE task SET project_id = $1 WHERE id = $2`, [second, task!.id]);
      await db.query(`UPDATE task SET project_id = $1 WHERE id = $2`, [seed.projects.launch, task!.id]);
    } finally {
      await fixture.startServer();
    }
    try {
      await client.flush();
      await addTask(seed.projects.launch, 'after the overruled move');
      await waitFor('the stream past the pushes', async () => (await titles(client)).includes('after the overruled move'));
      expect((await db.query(`SELECT project_id FROM comment WHERE id = $1`, [comment]))[0]).toEqual({ project_id: seed.projects.launch });
      expect((await client.db.query(`SELECT project_id FROM task WHERE id = $1`, [task!.id])).rows).toEqual([{ project_id: seed.projects.launch }]);
      expect((await client.db.query(`SELECT body, project_id FROM comment WHERE id = $1`, [comment])).rows).toEqual([{ body: 'on a task moved back', project_id: seed.projects.launch }]);
    } finally {
      await client.close();
    }
  });

  it('resumes its subscriptions from the replica, offline and online', async () => {
    const { seed, url, token } = fixture;
    const dataDir = path.join(fixture.scratch.dir, 'resumes');
    let client = await createSyncClient({ url, token, dataDir, subscriptions: [{ name: 'project', params: { projectId: seed.projects.launch } }] });
    await client.ready;
    await client.subscribe('project', { projectId: second }).ready;
    await client.close();

    // Offline: the stored subscriptions are ready at once, with their rows.
    await fixture.stopServer();
    try {
      client = await createSyncClient({ url, token, dataDir });
      await client.ready;
      await client.subscribe('project', { projectId: second }).ready;
      expect(await titles(client, `project_id = '${second}'`)).toEqual(await serverTitles(second));
      await client.close();
    } finally {
      await fixture.startServer();
    }
    // Online again: changes made meanwhile to either project arrive.
    await addTask(second, 'second: while closed');
    await addTask(seed.projects.launch, 'launch: while closed');
    client = await createSyncClient({ url, token, dataDir });
    try {
      await waitFor('both projects caught up', async () => (await titles(client)).includes('second: while closed') && (await titles(client)).includes('launch: while closed'));
      expect(await titles(client, `project_id = '${second}'`)).toEqual(await serverTitles(second));
      // A replica that holds subscriptions cannot be turned into a whole-scope one, nor the reverse.
      await expect(createSyncClient({ url, token, dataDir: path.join(fixture.scratch.dir, 'whole') }).then(async (whole) => {
        await whole.ready;
        await expect(whole.subscribe('project', { projectId: second }).ready).rejects.toSatisfy((error) => SyncClientError.is(error, 'invalid_subscription'));
        await whole.close();
        return createSyncClient({ url, token, dataDir: path.join(fixture.scratch.dir, 'whole'), subscriptions: [] });
      })).rejects.toSatisfy((error) => SyncClientError.is(error, 'invalid_subscription'));
    } finally {
      await client.close();
    }
  });
  it.each(['subscribed live', 'named by a new client'])('meets a snapshot with the stream exactly (a project %s): a comment whose task left the project before the snapshot never arrives alone', async (how) => {
    const { seed, url, token, db } = fixture;
    const [{ id: third }] = (await db.query<{ id: string }>(`INSERT INTO project (workspace_id, name) VALUES ($1, 'Third') RETURNING id`, [seed.workspaces.shared])) as [{ id: string }];
    const [{ id: project }] = (await db.query<{ id: string }>(`INSERT INTO project (workspace_id, name) VALUES ($1, 'Met') RETURNING id`, [seed.workspaces.shared])) as [{ id: string }];
    const errors: Error[] = [];
    const open = (subscriptions: Array<{ name: 'project'; params: { projectId: string } }>) => {
      const client = createSyncClient({ url, token, dataDir: 'memory://', subscriptions });
      void client.then((opened) => opened.on('error', (error) => errors.push(error)));
      return client;
    };
    let client: SyncClient | undefined;
    const holder = await db.pool.connect();
    try {
      if (how === 'subscribed live') await (client = await open([{ name: 'project', params: { projectId: seed.projects.launch } }])).ready;
      const [task] = await addTask(project, 'leaves before the snapshot');
      await waitFor('the task in change_history', async () => (await db.query(`SELECT 1 FROM change_history WHERE data ->> 'id' = $1`, [task!.id])).length > 0);
      // Capture held back (change_history locked): a comment on the task, 6,000 tasks of a third project, then the
      // task (and its comment, by trigger) leave for the third project. All committed, so in a snapshot read now; the
      // stream will read them in two parts (a read takes 5,000 changes), the comment's insert first.
      await holder.query(`BEGIN; LOCK TABLE change_history IN SHARE MODE`);
      const [comment] = await db.query<{ id: string }>(`INSERT INTO comment (workspace_id, task_id, author_id, body) VALUES ($1, $2, $3, 'left with its task') RETURNING id`, [seed.workspaces.shared, task!.id, seed.users.alice]);
      await db.query(`INSERT INTO task (workspace_id, project_id, title) SELECT $1, $2, 'third ' || n FROM generate_series(1, 6000) n`, [seed.workspaces.shared, third]);
      await db.query(`UPDATE task SET project_id = $1 WHERE id = $2`, [third, task!.id]);
      const ready = client ? client.subscribe('project', { projectId: project }).ready : (client = await open([{ name: 'project', params: { projectId: project } }])).ready;
      await new Promise((resolve) => setTimeout(resolve, 500));
      await holder.query(`COMMIT`);
      await ready;
      await addTask(project, 'after the meeting');
      await waitFor('a live insert after the snapshot', async () => (await titles(client!)).includes('after the meeting'));
      expect(errors).toEqual([]);
      expect(client.status).not.toBe('error');
      expect(await titles(client, `project_id = '${project}'`)).toEqual(await serverTitles(project));
      expect((await client.db.query(`SELECT 1 FROM task WHERE id = $1`, [task!.id])).rows).toEqual([]);
      expect((await client.db.query(`SELECT 1 FROM comment WHERE id = $1`, [comment!.id])).rows).toEqual([]);
    } finally {
      await holder.query(`ROLLBACK`).catch(() => undefined);
      holder.release();
      await client?.close();
    }
  });
});

/** A TCP relay to the server that holds the server's WebSocket messages until `release()` (its upgrade answer and what the client sends pass). */
/**
 * Sits between clients and the server: the server's messages wait until `release()`, and once a
 * message `cutAfter` names has passed, none passes any more (the socket stays open, silent).
 */
class HeldRelay {
  private held: Array<{ to: Socket; chunk: Buffer }> = [];
  private holding = true;
  private readonly sockets = new Set<Socket>();
  private cut: ((text: string) => boolean) | undefined;
  private isCut = false;
  heldBytes = 0;

  private constructor(private readonly server: Server) {}

  static async open(targetPort: number): Promise<HeldRelay> {
    const relay = new HeldRelay(createServer((downstream) => relay.connect(downstream, targetPort)));
    await new Promise<void>((resolve) => relay.server.listen(0, '127.0.0.1', resolve));
    return relay;
  }

  private connect(downstream: Socket, targetPort: number): void {
    const upstream = connect(targetPort, '127.0.0.1');
    for (const socket of [downstream, upstream]) {
      this.sockets.add(socket);
      socket.on('error', () => undefined);
      socket.on('close', () => (downstream.destroy(), upstream.destroy()));
    }
    downstream.pipe(upstream);
    let upgraded = false;
    let pending = Buffer.alloc(0);
    upstream.on('data', (chunk: Buffer) => {
      // The HTTP upgrade passes (the socket opens and the client says hello); the server's messages, frame by frame, may wait.
      if (!upgraded) {
        upgraded = true;
        const end = chunk.indexOf('\r\n\r\n') + 4;
        downstream.write(chunk.subarray(0, end));
        chunk = chunk.subarray(end);
      }
      pending = Buffer.concat([pending, chunk]);
      for (let frame = nextFrame(pending); frame; frame = nextFrame(pending)) {
        pending = pending.subarray(frame.bytes.length);
        this.pass(downstream, frame);
      }
    });
  }

  private pass(to: Socket, frame: { bytes: Buffer; text: string }): void {
    if (this.isCut) return;
    if (this.holding) {
      this.held.push({ to, chunk: frame.bytes });
      this.heldBytes += frame.bytes.length;
      return;
    }
    to.write(frame.bytes);
    if (this.cut?.(frame.text)) this.isCut = true;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as { port: number }).port}`;
  }

  release(): void {
    this.holding = false;
    for (const { to, chunk } of this.held.splice(0)) to.write(chunk);
  }

  /** After the next server message `matches` names, nothing more reaches the client. */
  cutAfter(matches: (text: string) => boolean): void {
    this.cut = matches;
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

/** The first whole WebSocket frame the server sent (unmasked), if `data` holds one. */
function nextFrame(data: Buffer): { bytes: Buffer; text: string } | undefined {
  if (data.length < 2) return undefined;
  let length = data[1]! & 0x7f;
  let offset = 2;
  if (length === 126) {
    if (data.length < 4) return undefined;
    length = data.readUInt16BE(2);
    offset = 4;
  } else if (length === 127) {
    if (data.length < 10) return undefined;
    length = Number(data.readBigUInt64BE(2));
    offset = 10;
  }
  if (data.length < offset + length) return undefined;
  return { bytes: data.subarray(0, offset + length), text: data.subarray(offset, offset + length).toString() };
}
