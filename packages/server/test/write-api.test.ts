import { randomUUID } from 'node:crypto';
import { type ChangeResult, formatHlc } from '@walsync/db/server';
import { Tokens, type WalsyncServer } from '@walsync/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_JWT_SECRET, type TestDatabase, postgresTargets, seedWorkspaces, startDatabase, startServer, waitFor } from '@walsync/test-support';

const CLIENT = 'client-a';
let wall = Date.now();
/** HLCs that move forward like a client's clock would. */
const nextHlc = (client = CLIENT, offsetMs = 0) => formatHlc({ wallMs: (wall += 1) + offsetMs, counter: 0, node: client });

describe.each(postgresTargets())('the write API ($name)', (target) => {
  let db: TestDatabase;
  let server: WalsyncServer;
  let seed: Awaited<ReturnType<typeof seedWorkspaces>>;
  let aliceToken: string;

  const post = async (body: unknown, options: { token?: string | null; raw?: string; contentType?: string } = {}) => {
    const token = options.token === undefined ? aliceToken : options.token;
    const response = await fetch(`${server.url}/changes`, {
      method: 'POST',
      headers: { 'content-type': options.contentType ?? 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: options.raw ?? JSON.stringify(body),
    });
    return { status: response.status, body: (await response.json()) as { results: ChangeResult[]; error?: { code: string; message: string } } };
  };
  const write = async (changes: unknown[], clientId = CLIENT) => {
    const response = await post({ clientId, changes });
    expect(response.status, JSON.stringify(response.body)).toBe(200);
    return response.body.results;
  };
  const task = (id: string, data: Record<string, unknown>, op: 'insert' | 'update' | 'delete' = 'update', hlc = nextHlc()) => ({
    changeId: randomUUID(),
    table: 'task',
    op,
    pk: { id },
    data,
    hlc,
  });
  const newTask = (title: string) =>
    task(randomUUID(), { workspace_id: seed.workspaces.shared, project_id: seed.projects.launch, title }, 'insert');
  const row = async (id: string) => (await db.query(`SELECT to_jsonb(t.*) AS row FROM task t WHERE id = $1`, [id]))[0]?.row;

  beforeAll(async () => {
    db = await startDatabase(target);
    server = await startServer(db.url);
    seed = await seedWorkspaces(db);
    aliceToken = await new Tokens(TEST_JWT_SECRET).issue(seed.users.alice);
  });
  afterAll(async () => {
    await server?.stop();
    await db?.dispose();
  });

  it('answers JSON nested too deep as an invalid value of that change alone, never a 500', async () => {
    // Sent as text: this process's own JSON.stringify would overflow its stack on it, as the server's did.
    const deep = `${'['.repeat(6_000)}"bottom"${']'.repeat(6_000)}`;
    const fine = newTask('next to a deep one');
    const raw = JSON.stringify({ clientId: CLIENT, changes: [{ ...newTask('too deep'), data: { ...newTask('x').data, labels: '__DEEP__' } }, fine] }).replace('"__DEEP__"', deep);
    const response = await post(undefined, { raw });
    expect(response.status, JSON.stringify(response.body)).toBe(200);
    const [refused, applied] = response.body.results;
    expect(refused).toMatchObject({ status: 'error', code: 'invalid_value', message: expect.stringMatching(/labels must be JSON nested at most 100 levels deep/) });
    expect(applied).toMatchObject({ status: 'applied' });
  });

  it('applies an insert and answers with the row the server stored and an LSN', async () => {
    const change = newTask('first');
    const [result] = await write([change]);
    expect(result).toMatchObject({ changeId: change.changeId, status: 'applied', lsn: expect.stringMatching(/^[0-9A-F]+\/[0-9A-F]+$/) });
    const applied = result as Extract<ChangeResult, { status: 'applied' }>;
    expect(applied.row).toMatchObject({ id: change.pk.id, title: 'first', status: 'todo', position: 0, labels: [], version: 1, hlc: change.hlc, origin_client_id: CLIENT });
    expect(applied.row).toEqual(await row(change.pk.id));
  });

  it('carries the writing client id into change_history through the WAL (and NULL for external writes)', async () => {
    const change = newTask('attributed');
    const [result] = await write([change]);
    const history = await waitFor('the write to be captured', async () => {
      const [found] = await db.query(`SELECT client_id, lsn, commit_lsn FROM change_history WHERE data->>'id' = $1`, [change.pk.id]);
      return found;
    });
    expect(history.client_id).toBe(CLIENT);
    const answered = BigInt(`0x${(result as { lsn: string }).lsn.replace('/', '').padStart(16, '0')}`);
    const [hi, lo] = history.lsn.split('/');
    expect(BigInt(`0x${hi}`) * 2n ** 32n + BigInt(`0x${lo}`)).toBeLessThanOrEqual(answered);

    await db.query(`UPDATE task SET title = 'by psql' WHERE id = $1`, [change.pk.id]);
    const external = await waitFor('the external update', async () => {
      const [found] = await db.query(`SELECT client_id FROM change_history WHERE data->>'id' = $1 AND operation = 'update'`, [change.pk.id]);
      return found;
    });
    expect(external.client_id).toBeNull();
  });

  it('runs a batch again when it deadlocks with another one, so neither write is refused', async () => {
    // Each batch comments on one task and moves the other: a comment's trigger locks its task (so it
    // takes the task's project), a move locks the task it moves. Held back together, they cross.
    const [x, y] = [newTask('crossing x'), newTask('crossing y')];
    await write([x, y]);
    const comment = (taskId: unknown, body: string, client = CLIENT) => ({
      changeId: randomUUID(),
      table: 'comment',
      op: 'insert' as const,
      pk: { id: randomUUID() },
      data: { workspace_id: seed.workspaces.shared, task_id: taskId, author_id: seed.users.alice, body },
      hlc: nextHlc(client),
    });
    const [{ id: other }] = await db.query<{ id: string }>(`INSERT INTO project (workspace_id, name) VALUES ($1, 'crossing') RETURNING id`, [seed.workspaces.shared]);
    const holder = await db.pool.connect();
    try {
      await holder.query('BEGIN');
      await holder.query(`SELECT 1 FROM task WHERE id = ANY($1) FOR SHARE`, [[x.pk.id, y.pk.id]]);
      const batches = [
        write([comment(x.pk.id, 'on x'), task(y.pk.id as string, { project_id: other })], 'client-a'),
        write([comment(y.pk.id, 'on y', 'client-b'), task(x.pk.id as string, { project_id: other }, 'update', nextHlc('client-b'))], 'client-b'),
      ];
      await new Promise((resolve) => setTimeout(resolve, 300));
      await holder.query('COMMIT');
      const results = (await Promise.all(batches)).flat();
      expect(results.map((result) => result.status), JSON.stringify(results)).toEqual(['applied', 'applied', 'applied', 'applied']);
    } finally {
      holder.release();
    }
    expect(await db.query(`SELECT body, project_id::text FROM comment WHERE task_id = ANY($1) ORDER BY body`, [[x.pk.id, y.pk.id]])).toEqual([
      { body: 'on x', project_id: other },
      { body: 'on y', project_id: other },
    ]);
  });

  it('refuses a write whose user is being removed from the workspace as it is checked (it waits for the removal, then sees it)', async () => {
    const bobToken = await new Tokens(TEST_JWT_SECRET).issue(seed.users.bob);
    const remover = await db.pool.connect();
    const removal = `UPDATE workspace_member SET deleted_at = now() WHERE user_id = $1 AND workspace_id = $2`;
    try {
      // The removal is made but not committed when bob's batch is checked: the batch waits for it, then sees it.
      await remover.query('BEGIN');
      await remover.query(removal, [seed.users.bob, seed.workspaces.shared]);
      const during = post({ clientId: 'client-bob', changes: [task(randomUUID(), { workspace_id: seed.workspaces.shared, project_id: seed.projects.launch, title: 'during the removal' }, 'insert', nextHlc('client-bob'))] }, { token: bobToken });
      await new Promise((resolve) => setTimeout(resolve, 300));
      await remover.query('COMMIT');
      const answered = await during;
      expect(answered.status).toBe(200);
      expect(answered.body.results[0]).toMatchObject({ status: 'error', code: 'forbidden_scope' });
      expect(await db.query(`SELECT 1 FROM task WHERE title = 'during the removal'`)).toHaveLength(0);
    } finally {
      remover.release();
      await db.query(`UPDATE workspace_member SET deleted_at = NULL WHERE user_id = $1 AND workspace_id = $2`, [seed.users.bob, seed.workspaces.shared]);
    }
  });

  it('resolves conflicts by last writer wins on the HLC, in both directions', async () => {
    const created = newTask('lww');
    await write([created]);
    const id = created.pk.id as string;
    const older = nextHlc();
    const newer = nextHlc();

    const [winning] = await write([task(id, { title: 'newer' }, 'update', newer)]);
    expect(winning!.status).toBe('applied');
    const [losing] = await write([task(id, { title: 'older' }, 'update', older)]);
    expect(losing).toMatchObject({ status: 'rejected', reason: 'stale', row: { title: 'newer', hlc: newer } });
    expect((await row(id)).title).toBe('newer');

    // An external write is stamped with the server clock, so a client write stamped earlier loses to it.
    const stampedBefore = nextHlc(CLIENT, -10_000);
    await db.query(`UPDATE task SET title = 'psql wins' WHERE id = $1`, [id]);
    const [afterExternal] = await write([task(id, { title: 'stale client' }, 'update', stampedBefore)]);
    expect(afterExternal).toMatchObject({ status: 'rejected', reason: 'stale', row: { title: 'psql wins' } });

    // Ties on wall time and counter are broken by client id.
    const tie = Date.now() + 1000;
    const [bFirst] = await write([task(id, { title: 'client-b' }, 'update', formatHlc({ wallMs: tie, counter: 0, node: 'client-b' }))], 'client-b');
    const [aSecond] = await write([task(id, { title: 'client-a' }, 'update', formatHlc({ wallMs: tie, counter: 0, node: 'client-a' }))], 'client-a');
    expect(bFirst!.status).toBe('applied');
    expect(aSecond).toMatchObject({ status: 'rejected', reason: 'stale' });
  });

  it('stores deletes as tombstones that beat older writes, and lets a newer insert bring the row back', async () => {
    const created = newTask('doomed');
    await write([created]);
    const id = created.pk.id as string;
    const beforeDelete = nextHlc();
    const [deleted] = await write([task(id, {}, 'delete')]);
    expect(deleted).toMatchObject({ status: 'applied', row: { id, deleted_at: expect.any(String) } });
    expect((await row(id)).deleted_at).not.toBeNull();

    // An older edit cannot bring the row back: it sets its column (every replica holds the same) and the row stays deleted.
    const [older] = await write([task(id, { title: 'too late' }, 'update', beforeDelete)]);
    expect(older).toMatchObject({ status: 'applied', columns: { applied: ['title'], lost: [] }, row: { title: 'too late', deleted_at: expect.any(String) } });
    // An older delete loses to the one there.
    const [again] = await write([task(id, {}, 'delete', beforeDelete)]);
    expect(again).toMatchObject({ status: 'rejected', reason: 'stale', columns: { lost: ['deleted_at'] } });

    const [revived] = await write([task(id, { workspace_id: seed.workspaces.shared, project_id: seed.projects.launch, title: 'back' }, 'insert')]);
    expect(revived).toMatchObject({ status: 'applied', row: { title: 'back', deleted_at: null } });
  });

  it('is idempotent by changeId: a retry answers the first answer and writes nothing; other content under the same id is refused', async () => {
    const created = newTask('once');
    const [first] = await write([created]);
    const [retry] = await write([created]);
    expect(retry).toMatchObject({ ...first, duplicate: true, lsn: expect.any(String) });
    expect((await row(created.pk.id as string)).version).toBe(1);
    const [count] = await db.query(`SELECT count(*)::int AS n FROM task WHERE id = $1`, [created.pk.id]);
    expect(count!.n).toBe(1);

    const [replayed] = await write([{ ...created, data: { ...created.data, title: 'other' } }]);
    expect(replayed).toMatchObject({ status: 'error', code: 'replayed_change' });
    expect((await row(created.pk.id as string)).title).toBe('once');
  });

  it('answers a retry with the row as it is now: changed since, moved out of reach, or deleted (never the first answer\'s row)', async () => {
    const [changed, moved, deleted] = [newTask('retried, changed since'), newTask('retried, moved since'), newTask('retried, deleted since')];
    await write([changed, moved, deleted]);
    await db.query(`UPDATE task SET title = 'changed by SQL' WHERE id = $1`, [changed.pk.id]);
    await db.query(`UPDATE task SET workspace_id = $1, project_id = $2 WHERE id = $3`, [seed.workspaces.other, seed.projects.secret, moved.pk.id]);
    await db.query(`DELETE FROM task WHERE id = $1`, [deleted.pk.id]);
    // A client that never stored the first answers sends the same changes again.
    const retried = await write([changed, moved, deleted]);
    expect(retried[0]).toMatchObject({ status: 'applied', duplicate: true, row: { title: 'changed by SQL' } });
    expect(retried[1]).toMatchObject({ status: 'applied', duplicate: true, row: null });
    expect(retried[2]).toMatchObject({ status: 'applied', duplicate: true, row: null });
    expect(await row(deleted.pk.id as string)).toBeUndefined();
  });

  it('applies a 100-change batch in one go, answering each change with its own row, and a retry from the receipts', async () => {
    const batch = Array.from({ length: 100 }, (_, i) => newTask(`bulk ${i}`));
    const results = await write(batch);
    results.forEach((result, i) => expect(result).toMatchObject({ changeId: batch[i]!.changeId, status: 'applied', row: { id: batch[i]!.pk.id, title: `bulk ${i}` } }));
    const retried = await write(batch);
    retried.forEach((result, i) => expect(result).toMatchObject({ changeId: batch[i]!.changeId, status: 'applied', duplicate: true, row: { title: `bulk ${i}` } }));
    const [count] = await db.query(`SELECT count(*)::int AS n FROM task WHERE title LIKE 'bulk %'`);
    expect(count!.n).toBe(100);
  });

  it('answers every change of a mixed batch on its own and writes only the valid ones', async () => {
    const good = newTask('good');
    const missingProject = task(randomUUID(), { workspace_id: seed.workspaces.shared, project_id: randomUUID(), title: 'orphan' }, 'insert');
    const badType = task(randomUUID(), { workspace_id: seed.workspaces.shared, project_id: seed.projects.launch, title: 42 }, 'insert');
    const alsoGood = newTask('also good');
    const results = await write([good, missingProject, badType, alsoGood]);
    expect(results.map((result) => result.status)).toEqual(['applied', 'error', 'error', 'applied']);
    // A foreign key to nothing is answered before the database sees it, like one into another workspace.
    expect(results[1]).toMatchObject({ code: 'forbidden_reference', message: "project_id must name a project of this row's workspace" });
    expect(results[2]).toMatchObject({ code: 'invalid_value', message: 'title must be a string of at most 100000 characters, got number 42' });
    expect(await row(missingProject.pk.id as string)).toBeUndefined();
    expect(await row(badType.pk.id as string)).toBeUndefined();
    expect((await row(alsoGood.pk.id as string)).title).toBe('also good');
  });

  it('refuses writes outside the user\'s workspaces and leaves those rows untouched', async () => {
    const [carolsTask] = await db.query<{ id: string }>(
      `INSERT INTO task (workspace_id, project_id, title) VALUES ($1, $2, 'carol only') RETURNING id`,
      [seed.workspaces.other, seed.projects.secret],
    );
    const results = await write([
      task(carolsTask!.id, { title: 'hijacked' }),
      task(randomUUID(), { workspace_id: seed.workspaces.other, project_id: seed.projects.secret, title: 'planted' }, 'insert'),
      task(carolsTask!.id, {}, 'delete'),
    ]);
    expect(results.map((result) => (result.status === 'error' ? result.code : result.status))).toEqual(['forbidden_scope', 'forbidden_scope', 'forbidden_scope']);
    expect(await row(carolsTask!.id)).toMatchObject({ title: 'carol only', deleted_at: null });

    const mine = newTask('mine');
    await write([mine]);
    const [moved] = await write([task(mine.pk.id as string, { workspace_id: seed.workspaces.other })]);
    // Moving a row of yours out to a workspace you are not in: rejected with the server's row (which stays yours).
    expect(moved).toMatchObject({ status: 'rejected', reason: 'constraint', row: { id: mine.pk.id, workspace_id: seed.workspaces.shared } });
  });
});
