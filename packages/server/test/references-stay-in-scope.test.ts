import { randomUUID } from 'node:crypto';
import { type ChangeResult, formatHlc } from '@walsync/db/server';
import { Tokens, type WalsyncServer } from '@walsync/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BareClient } from './support/bare-client';
import { TEST_JWT_SECRET, type TestDatabase, postgresTargets, seedWorkspaces, startDatabase, startServer } from '@walsync/test-support';

let wall = Date.now();

describe.each(postgresTargets())('references stay inside the scope ($name)', (target) => {
  const tokens = new Tokens(TEST_JWT_SECRET);
  let db: TestDatabase;
  let server: WalsyncServer;
  let seed: Awaited<ReturnType<typeof seedWorkspaces>>;
  /** A task of the shared (Acme) workspace that carol is not a member of. */
  let acmeTask: string;

  /** Writes `changes` as `user` through POST /changes; the answers. */
  const write = async (user: 'alice' | 'bob' | 'carol', changes: Array<{ table: string; op: 'insert' | 'update'; pk: Record<string, string>; data: Record<string, unknown> }>) => {
    const clientId = `${user}-refs`;
    const response = await fetch(`${server.url}/changes`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${await tokens.issue(seed.users[user])}` },
      body: JSON.stringify({ clientId, changes: changes.map((change) => ({ changeId: randomUUID(), hlc: formatHlc({ wallMs: (wall += 1), counter: 0, node: clientId }), ...change })) }),
    });
    expect(response.status).toBe(200);
    return ((await response.json()) as { results: ChangeResult[] }).results;
  };
  const outcome = (result: ChangeResult) => (result.status === 'error' ? `${result.code}: ${result.message}` : result.status);
  const comment = (workspace: string, task: string, author: string, body = 'hi') => ({
    table: 'comment',
    op: 'insert' as const,
    pk: { id: randomUUID() },
    data: { workspace_id: workspace, task_id: task, author_id: author, body },
  });
  const task = (workspace: string, project: string, extra: Record<string, unknown> = {}) => ({
    table: 'task',
    op: 'insert' as const,
    pk: { id: randomUUID() },
    data: { workspace_id: workspace, project_id: project, title: 'mine', ...extra },
  });

  beforeAll(async () => {
    db = await startDatabase(target);
    server = await startServer(db.url);
    seed = await seedWorkspaces(db);
    [{ id: acmeTask }] = (await db.query<{ id: string }>(`INSERT INTO task (workspace_id, project_id, title) VALUES ($1, $2, 'acme secret') RETURNING id`, [
      seed.workspaces.shared,
      seed.projects.launch,
    ])) as [{ id: string }];
  });
  afterAll(async () => {
    await server?.stop();
    await db?.dispose();
  });

  it("refuses carol's rows that point into Acme, and answers a foreign id and a missing one alike", async () => {
    const { carol, alice } = seed.users;
    const other = seed.workspaces.other;
    const results = await write('carol', [
      comment(other, acmeTask, carol),
      comment(other, randomUUID(), carol),
      task(other, seed.projects.launch),
      task(other, randomUUID()),
      comment(other, acmeTask, alice),
      task(other, seed.projects.secret, { assignee_id: alice }),
      task(other, seed.projects.secret, { assignee_id: randomUUID() }),
    ]);
    expect(results.map(outcome)).toEqual([
      "forbidden_reference: task_id must name a task of this row's workspace",
      "forbidden_reference: task_id must name a task of this row's workspace",
      "forbidden_reference: project_id must name a project of this row's workspace",
      "forbidden_reference: project_id must name a project of this row's workspace",
      "forbidden_reference: task_id must name a task of this row's workspace",
      "forbidden_reference: assignee_id must name a member of this row's workspace",
      "forbidden_reference: assignee_id must name a member of this row's workspace",
    ]);
    const written = await db.query<{ n: number }>(`SELECT (SELECT count(*) FROM comment)::int + (SELECT count(*) FROM task WHERE workspace_id = $1)::int AS n`, [other]);
    expect(written[0]!.n).toBe(0);
  });

  it('accepts references inside the workspace, also to a row inserted earlier in the same batch', async () => {
    const { carol } = seed.users;
    const other = seed.workspaces.other;
    const parent = task(other, seed.projects.secret, { assignee_id: carol });
    const results = await write('carol', [parent, comment(other, parent.pk.id, carol)]);
    expect(results.map(outcome)).toEqual(['applied', 'applied']);
    // An update that leaves the references alone is not held up by them.
    const [renamed] = await write('carol', [{ table: 'task', op: 'update', pk: parent.pk, data: { title: 'renamed' } }]);
    expect(outcome(renamed!)).toBe('applied');
  });

  it('refuses a move that would leave references in the old workspace, and takes one that moves them along', async () => {
    // alice joins carol's workspace: she may write in both.
    await db.query(`INSERT INTO workspace_member (workspace_id, user_id, role) VALUES ($1, $2, 'member')`, [seed.workspaces.other, seed.users.alice]);
    const [created] = await write('alice', [task(seed.workspaces.shared, seed.projects.launch)]);
    const id = (created as Extract<ChangeResult, { status: 'applied' }>).row!.id as string;
    const [kept] = await write('alice', [{ table: 'task', op: 'update', pk: { id }, data: { workspace_id: seed.workspaces.other } }]);
    expect(outcome(kept!)).toBe("forbidden_reference: project_id must name a project of this row's workspace");
    const [along] = await write('alice', [{ table: 'task', op: 'update', pk: { id }, data: { workspace_id: seed.workspaces.other, project_id: seed.projects.secret } }]);
    expect(outcome(along!)).toBe('applied');
  });

  it('answers the same over the socket', async () => {
    const client = await BareClient.connect(server.url);
    client.hello({ token: await tokens.issue(seed.users.carol), clientId: 'carol-socket' });
    await client.next('snapshot_end');
    const hlc = formatHlc({ wallMs: (wall += 1), counter: 0, node: 'carol-socket' });
    client.send({ type: 'write', requestId: 'r1', changes: [{ changeId: randomUUID(), hlc, ...comment(seed.workspaces.other, acmeTask, seed.users.carol) }] });
    const answer = await client.next('write_result');
    expect(answer.results.map(outcome)).toEqual(["forbidden_reference: task_id must name a task of this row's workspace"]);
    client.close();
  });
});
