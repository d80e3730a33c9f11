import { ROWS_LIMITS } from '@walsync/db/server';
import { Tokens } from '@walsync/server';
import { type SyncFixture, startSyncFixture } from '@walsync/test-support';
import { SyncClientError, readRows } from '@walsync/web';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const project = (projectId: string) => ({ name: 'project' as const, params: { projectId } });

/** `POST /rows` through `readRows`: what a page paints before its replica has hydrated, and no more than the user may see. */
describe('reading rows once (POST /rows)', () => {
  let fixture: SyncFixture;
  let second: string;

  beforeAll(async () => {
    fixture = await startSyncFixture('web-rows-read');
    const { db, seed } = fixture;
    [{ id: second }] = (await db.query<{ id: string }>(`INSERT INTO project (workspace_id, name) VALUES ($1, 'Second') RETURNING id`, [seed.workspaces.shared])) as [{ id: string }];
    await db.query(`INSERT INTO task (workspace_id, project_id, title) VALUES ($1, $2, 'launch 1'), ($1, $2, 'launch 2'), ($1, $3, 'second 1')`, [seed.workspaces.shared, seed.projects.launch, second]);
    await db.query(`INSERT INTO task (workspace_id, project_id, title) VALUES ($1, $2, 'carol''s secret')`, [seed.workspaces.other, seed.projects.secret]);
  });
  afterAll(async () => {
    await fixture?.dispose();
  });

  it("answers the user's whole scope, and nothing of another workspace", async () => {
    const { url, token, seed } = fixture;
    const tables = await readRows({ url, token });
    expect(tables.workspace!.map((row) => row.id)).toEqual([seed.workspaces.shared]);
    expect(tables.project!.map((row) => row.name).sort()).toEqual(['Launch', 'Second']);
    expect(tables.task!.map((row) => row.title).sort()).toEqual(['launch 1', 'launch 2', 'second 1']);
    expect(JSON.stringify(tables)).not.toContain("carol's secret");
  });

  it("answers the whole tables and a subscription's rows only, as a partial replica would hold them", async () => {
    const { url, token, seed } = fixture;
    const tables = await readRows({ url: `${url.replace('http', 'ws')}/sync`, token, subscriptions: [project(seed.projects.launch)] });
    expect(tables.task!.map((row) => row.title).sort()).toEqual(['launch 1', 'launch 2']);
    expect(tables.project!.map((row) => row.name).sort()).toEqual(['Launch', 'Second']);
    const none = await readRows({ url, token, subscriptions: [] });
    expect(Object.keys(none).sort()).toEqual(['project', 'workspace', 'workspace_member']);
  });

  it('refuses what the user may not read, bad requests and bad tokens, with the reason', async () => {
    const { url, token, seed } = fixture;
    const refused = async (read: Promise<unknown>) => read.then(() => expect.fail('the read was answered'), (error: unknown) => error as SyncClientError);
    const forbidden = await refused(readRows({ url, token, subscriptions: [project(seed.projects.secret)] }));
    expect(forbidden.code).toBe('subscription_refused');
    expect(forbidden.message).toContain('names no project in your workspaces');
    // An id that does not exist is refused the same way: ids of other workspaces cannot be probed.
    const unknownId = await refused(readRows({ url, token, subscriptions: [project('00000000-0000-4000-8000-000000000000')] }));
    expect(unknownId.message.replace(/\(projectId .*\)/, '')).toBe(forbidden.message.replace(/\(projectId .*\)/, ''));
    expect((await refused(readRows({ url, token, subscriptions: [{ name: 'nope', params: {} } as never] }))).code).toBe('invalid_subscription');
    expect((await refused(readRows({ url, token, subscriptions: [project('not-a-uuid')] }))).code).toBe('invalid_subscription');
    const forged = await new Tokens('another-secret-0123456789abcdef').issue(seed.users.alice);
    expect((await refused(readRows({ url, token: forged }))).code).toBe('refused');
    expect((await refused(readRows({ url: 'ftp://example.test', token }))).code).toBe('bad_url');

    const post = (body: string, headers: Record<string, string> = {}) =>
      fetch(`${url}/rows`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}`, ...headers }, body });
    const extra = await post(JSON.stringify({ subscriptions: [], table: 'app_user' }));
    expect(extra.status).toBe(400);
    expect((await extra.json()).error.code).toBe('invalid_request');
    expect((await post('{"subscriptions": "all"}')).status).toBe(400);
    expect((await post('{not json')).status).toBe(400);
    expect((await post('{}', { authorization: '' })).status).toBe(401);
    expect((await post(JSON.stringify({ subscriptions: Array.from({ length: ROWS_LIMITS.maxSubscriptions + 1 }, () => project(seed.projects.launch)) }))).status).toBe(400);
  });

  it(`refuses a read of more than ${ROWS_LIMITS.maxRows} rows, and still answers a smaller one`, async () => {
    const { url, token, seed, db } = fixture;
    await db.query(`INSERT INTO task (workspace_id, project_id, title) SELECT $1, $2, 'bulk ' || g FROM generate_series(1, $3::int) g`, [seed.workspaces.shared, second, ROWS_LIMITS.maxRows]);
    const error = await readRows({ url, token }).then(
      () => undefined,
      (reason: SyncClientError) => reason,
    );
    expect(error?.code).toBe('refused');
    expect(error?.message).toContain(`at most ${ROWS_LIMITS.maxRows} rows`);
    const small = await readRows({ url, token, subscriptions: [project(seed.projects.launch)] });
    expect(small.task).toHaveLength(2);
  });
});
