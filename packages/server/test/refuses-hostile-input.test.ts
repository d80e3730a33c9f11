import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { CloseCodes, type ChangeResult, formatHlc } from '@walsync/db/server';
import { DEV_JWT_SECRET, Tokens, type WalsyncServer } from '@walsync/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BareClient } from './support/bare-client';
import { TEST_JWT_SECRET, type TestDatabase, postgresTargets, seedWorkspaces, startDatabase, startServer } from '@walsync/test-support';

/**
 * The bad-input suite: malformed and hostile input at every boundary of the server — WebSocket
 * messages, writes, HTTP, configuration. Each case must get a clear error; after each, the synced
 * data is exactly as before (nothing partial) unless the case says it writes, and another user's
 * session still streams. (The CLI and migration files have theirs in @walsync/db's cli and
 * extraction tests.)
 */
const CLIENT = 'hostile-alice';
let wall = Date.now();
const hlc = (node = CLIENT, offsetMs = 0) => formatHlc({ wallMs: (wall += 1) + offsetMs, counter: 0, node });
const MAIN = path.resolve(__dirname, '../dist/main.cjs');

interface HostileCase {
  boundary: 'websocket' | 'write' | 'http' | 'configuration';
  input: string;
  run(): Promise<void>;
  /** The case writes on purpose (e.g. a value that looks like SQL is stored as text). */
  writes?: boolean;
}

describe('hostile input at every boundary', () => {
  let db: TestDatabase;
  let server: WalsyncServer;
  let seed: Awaited<ReturnType<typeof seedWorkspaces>>;
  let bystander: BareClient;
  let alice: BareClient;
  /** A row of carol's workspace, and one of the shared workspace, that the cases try to reach. */
  let carolsTask: string;
  let sharedTask: string;
  const tokens = new Tokens(TEST_JWT_SECRET);
  const sockets: BareClient[] = [];
  let pings = 0;

  const open = async () => {
    const socket = await BareClient.connect(server.url);
    sockets.push(socket);
    return socket;
  };
  const live = async (user: 'alice' | 'bob' | 'carol', clientId: string) => {
    const socket = await open();
    socket.hello({ token: await tokens.issue(seed.users[user]), clientId });
    await socket.snapshot();
    return socket;
  };
  /** Sends one write over alice's session and returns its answers. */
  const write = async (changes: unknown[]): Promise<ChangeResult[]> => {
    const requestId = randomUUID();
    alice.send({ type: 'write', requestId, changes });
    return (await alice.next((message) => message.type === 'write_result' && message.requestId === requestId)).results;
  };
  const expectError = async (change: unknown, code: string, message: RegExp) => {
    const [result] = await write([change]);
    expect(result).toMatchObject({ status: 'error', code });
    expect((result as { message: string }).message).toMatch(message);
  };
  interface Change {
    changeId: string;
    table: string;
    op: string;
    pk: Record<string, unknown>;
    data: Record<string, unknown>;
    hlc: string;
  }
  /** A valid insert into alice's workspace, with `fields` changed. */
  const change = (fields: Partial<Change> & Record<string, unknown>): Change => ({
    changeId: randomUUID(),
    table: 'task',
    op: 'insert',
    pk: { id: randomUUID() },
    data: { workspace_id: seed.workspaces.shared, project_id: seed.projects.launch, title: 'hostile' },
    hlc: hlc(),
    ...fields,
  });
  const post = async (body: unknown, options: { token?: string | null; raw?: string; contentType?: string } = {}) => {
    const token = options.token === undefined ? await tokens.issue(seed.users.alice) : options.token;
    const response = await fetch(`${server.url}/changes`, {
      method: 'POST',
      headers: { 'content-type': options.contentType ?? 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: options.raw ?? JSON.stringify(body),
    });
    return { status: response.status, body: (await response.json()) as { results?: ChangeResult[]; error?: { code: string; message: string } } };
  };
  const expectHttp = async (response: Awaited<ReturnType<typeof post>>, status: number, code: string, message: RegExp) => {
    expect(response.status).toBe(status);
    expect(response.body.error).toMatchObject({ code, message: expect.stringMatching(message) });
  };
  /** A session that breaks the protocol gets an error and/or is closed with `code`. */
  const expectClosed = async (socket: BareClient, code: number, error?: string) => {
    if (error) expect(await socket.next('error')).toMatchObject({ code: error });
    expect((await socket.closed).code).toBe(code);
  };
  const helloWith = async (fields: Record<string, unknown>) => {
    const socket = await open();
    socket.send({ type: 'hello', protocol: 1, token: await tokens.issue(seed.users.alice), clientId: 'hostile-hello', schemaVersion: null, position: null, ...fields });
    return socket;
  };
  /** Starts the server process with `env` over the defaults (undefined: unset) and waits for it to exit. */
  const startServerWith = (env: Record<string, string | undefined>, args: string[] = []) => {
    const merged = { PATH: process.env.PATH, DATABASE_URL: db.url, PORT: '0', LOG_LEVEL: 'silent', WALSYNC_JWT_SECRET: TEST_JWT_SECRET, ...env };
    const result = spawnSync(process.execPath, [MAIN, ...args], {
      env: Object.fromEntries(Object.entries(merged).filter(([, value]) => value !== undefined)) as Record<string, string>,
      encoding: 'utf8',
      timeout: 30_000,
    });
    return { code: result.status, output: `${result.stdout}${result.stderr}` };
  };
  const digest = async () =>
    (
      await db.query<{ digest: string }>(
        `SELECT md5(coalesce(string_agg(r, '|' ORDER BY r), '')) AS digest FROM (
           SELECT to_jsonb(t)::text r FROM task t UNION ALL SELECT to_jsonb(c)::text FROM comment c
           UNION ALL SELECT to_jsonb(p)::text FROM project p UNION ALL SELECT to_jsonb(m)::text FROM workspace_member m) rows`,
      )
    )[0]!.digest;

  beforeAll(async () => {
    db = await startDatabase(postgresTargets()[0]!);
    server = await startServer(db.url);
    seed = await seedWorkspaces(db);
    [{ id: carolsTask }] = await db.query<{ id: string }>(`INSERT INTO task (workspace_id, project_id, title) VALUES ($1, $2, 'carol''s') RETURNING id`, [seed.workspaces.other, seed.projects.secret]);
    [{ id: sharedTask }] = await db.query<{ id: string }>(`INSERT INTO task (workspace_id, project_id, title) VALUES ($1, $2, 'shared') RETURNING id`, [seed.workspaces.shared, seed.projects.launch]);
    bystander = await live('bob', 'hostile-bystander');
    alice = await live('alice', CLIENT);
  });
  afterAll(async () => {
    for (const socket of sockets) socket.close();
    await server?.stop();
    await db?.dispose();
  });

  const cases: HostileCase[] = [
    // The WebSocket session.
    { boundary: 'websocket', input: 'a message before hello', run: async () => { const s = await open(); s.send({ type: 'sync_ack', position: '0/1' }); await expectClosed(s, CloseCodes.protocolViolation); } },
    { boundary: 'websocket', input: 'a hello with an unknown field', run: async () => expectClosed(await helloWith({ admin: true }), CloseCodes.protocolViolation) },
    { boundary: 'websocket', input: 'a hello for another protocol version', run: async () => expectClosed(await helloWith({ protocol: 99 }), CloseCodes.protocolViolation) },
    { boundary: 'websocket', input: 'a hello whose echoThrough is not a position', run: async () => expectClosed(await helloWith({ position: '0/1', echoThrough: "0/1'; SELECT 1" }), CloseCodes.protocolViolation) },
    { boundary: 'websocket', input: 'a hello whose client id is not an id', run: async () => expectClosed(await helloWith({ clientId: "x'; DROP TABLE sync_client; --" }), CloseCodes.protocolViolation) },
    { boundary: 'websocket', input: 'a token signed with another secret', run: async () => expectClosed(await helloWith({ token: await new Tokens('some-other-secret-entirely').issue(seed.users.alice) }), CloseCodes.unauthenticated, 'unauthenticated') },
    { boundary: 'websocket', input: 'an expired token', run: async () => expectClosed(await helloWith({ token: await tokens.issue(seed.users.alice, Math.floor(Date.now() / 1000) - 5) }), CloseCodes.unauthenticated, 'unauthenticated') },
    {
      boundary: 'websocket',
      input: 'an unsigned token (alg none)',
      run: async () => {
        const part = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
        await expectClosed(await helloWith({ token: `${part({ alg: 'none', typ: 'JWT' })}.${part({ sub: seed.users.alice, exp: 9_999_999_999 })}.` }), CloseCodes.unauthenticated, 'unauthenticated');
      },
    },
    { boundary: 'websocket', input: 'a token whose subject is not a user id', run: async () => expectClosed(await helloWith({ token: await tokens.issue("' OR 1=1 --") }), CloseCodes.unauthenticated, 'unauthenticated') },
    {
      boundary: 'websocket',
      input: "another user's client id",
      run: async () => {
        const s = await open();
        s.hello({ token: await tokens.issue(seed.users.carol), clientId: CLIENT });
        await expectClosed(s, CloseCodes.clientIdTaken, 'client_id_taken');
        expect(s.messages.map((message) => message.type)).toEqual(['error']);
      },
    },
    { boundary: 'websocket', input: 'a schema version the server does not have', run: async () => expectClosed(await helloWith({ schemaVersion: 'FromTheFuture9999999999999' }), CloseCodes.schemaAhead, 'schema_ahead') },
    { boundary: 'websocket', input: 'text that is not JSON', run: async () => { alice.send('{ not json'); expect(await alice.next('error')).toMatchObject({ code: 'bad_message' }); } },
    { boundary: 'websocket', input: 'a binary frame', run: async () => { alice.socket.send(Buffer.from([1, 2, 3]), { binary: true }); expect(await alice.next('error')).toMatchObject({ code: 'bad_message', message: expect.stringContaining('binary') }); } },
    { boundary: 'websocket', input: 'an unknown message type', run: async () => { alice.send({ type: 'teleport' }); expect(await alice.next('error')).toMatchObject({ code: 'bad_message', message: expect.stringContaining('type') }); } },
    { boundary: 'websocket', input: 'an ack whose position is not a position', run: async () => { alice.send({ type: 'sync_ack', position: 'yesterday' }); expect(await alice.next('error')).toMatchObject({ code: 'bad_message', message: expect.stringContaining('position') }); } },
    { boundary: 'websocket', input: 'an ack of a position never sent', run: async () => { alice.send({ type: 'sync_ack', position: 'FFFF/0' }); expect(await alice.next('error')).toMatchObject({ code: 'ack_unsent' }); } },
    {
      boundary: 'websocket',
      input: 'a replayed older ack after a newer one',
      run: async () => {
        const position = [...alice.messages].reverse().find((message) => message.type === 'changes' || message.type === 'snapshot_end')!.position as string;
        alice.send({ type: 'sync_ack', position });
        alice.send({ type: 'sync_ack', position: '0/1' });
        await write(['a fence: answered after both acks']);
        expect(await db.query(`SELECT acked_position FROM sync_client WHERE client_id = $1`, [CLIENT])).toEqual([{ acked_position: position }]);
      },
    },
    { boundary: 'websocket', input: 'a second hello', run: async () => { alice.send({ type: 'hello', protocol: 1, token: 'x', clientId: 'x', schemaVersion: null, position: null }); expect(await alice.next('error')).toMatchObject({ message: 'hello was already received' }); } },
    { boundary: 'websocket', input: 'a frame over the size limit', run: async () => { const s = await live('alice', 'hostile-huge'); s.send({ type: 'write', requestId: 'big', changes: ['x'.repeat(3 * 1024 * 1024)] }); expect((await s.closed).code).toBe(1009); } },
    { boundary: 'websocket', input: 'a flood of messages', run: async () => { const s = await live('alice', 'hostile-flood'); for (let i = 0; i < 400; i++) s.send({ type: 'sync_verify', position: '0/1' }); expect((await s.closed).code).toBe(CloseCodes.flood); } },
    { boundary: 'websocket', input: 'a write request with no changes', run: async () => { alice.send({ type: 'write', requestId: 'empty', changes: [] }); expect(await alice.next('error')).toMatchObject({ code: 'bad_message', message: expect.stringContaining('changes') }); } },

    // One change of a write, answered on its own.
    { boundary: 'write', input: 'a table that is not synced', run: () => expectError(change({ table: 'app_user' }), 'unknown_table', /"app_user" is not a synced table/) },
    { boundary: 'write', input: 'SQL in the table name', run: () => expectError(change({ table: 'task; DROP TABLE task' }), 'unknown_table', /is not a synced table/) },
    { boundary: 'write', input: 'a table the server manages', run: () => expectError(change({ table: 'workspace_member', pk: { workspace_id: seed.workspaces.shared, user_id: seed.users.carol } }), 'read_only_table', /managed by the server/) },
    { boundary: 'write', input: 'SQL in a column name', run: () => expectError(change({ op: 'update', data: { 'title"; DROP TABLE task; --': 'x' } }), 'unknown_column', /has no column "title"; DROP TABLE task; --"/) },
    { boundary: 'write', input: 'a value outside the enum', run: () => expectError(change({ op: 'update', data: { status: 'archived' } }), 'invalid_value', /status must be one of todo, doing, done/) },
    { boundary: 'write', input: 'a string for a number', run: () => expectError(change({ op: 'update', data: { position: 'first' } }), 'invalid_value', /position must be a finite number/) },
    { boundary: 'write', input: 'columns as an array', run: () => expectError(change({ op: 'update', data: ['x'] as never }), 'invalid_change', /data: expected an object of column values/) },
    { boundary: 'write', input: 'a key that is not a uuid', run: () => expectError(change({ op: 'update', pk: { id: 'not-a-uuid' }, data: { title: 'x' } }), 'invalid_value', /id must be a uuid/) },
    { boundary: 'write', input: 'a key with an extra column', run: () => expectError(change({ op: 'update', pk: { id: randomUUID(), other: 1 }, data: { title: 'x' } }), 'invalid_change', /pk of task must hold exactly id/) },
    { boundary: 'write', input: 'an update that changes nothing', run: () => expectError(change({ op: 'update', data: {} }), 'invalid_change', /at least one column/) },
    { boundary: 'write', input: 'an insert without its required columns', run: () => expectError(change({ data: { title: 'no project' } }), 'invalid_value', /needs workspace_id, project_id/) },
    { boundary: 'write', input: 'an unknown operation', run: () => expectError(change({ op: 'upsert' }), 'invalid_change', /op/) },
    { boundary: 'write', input: 'a change id that is not a uuid', run: () => expectError(change({ changeId: 'abc' }), 'invalid_change', /changeId: must be a uuid/) },
    { boundary: 'write', input: 'an unknown field in a change', run: () => expectError(change({ extra: true }), 'invalid_change', /Unrecognized key/) },
    { boundary: 'write', input: 'a change that is not an object', run: () => expectError('not an object', 'invalid_change', /expected object/) },
    { boundary: 'write', input: 'a malformed clock', run: () => expectError(change({ hlc: 'yesterday' }), 'invalid_change', /is not a hybrid logical clock timestamp/) },
    { boundary: 'write', input: "a clock stamped by another client", run: () => expectError(change({ hlc: hlc('client-z') }), 'invalid_change', /hlc node "client-z" is not this client/) },
    { boundary: 'write', input: 'a clock far in the future', run: () => expectError(change({ hlc: hlc(CLIENT, 3_600_000) }), 'clock_skew', /ahead of the server clock/) },
    { boundary: 'write', input: 'an oversized value', run: () => expectError(change({ data: { workspace_id: seed.workspaces.shared, project_id: seed.projects.launch, title: 'x'.repeat(70_000) } }), 'too_large', /at most 65536 bytes/) },
    { boundary: 'write', input: "an insert into another user's workspace", run: () => expectError(change({ data: { workspace_id: seed.workspaces.other, project_id: seed.projects.secret, title: 'x' } }), 'forbidden_scope', /writable only in workspaces you are a member of/) },
    { boundary: 'write', input: "an update of another workspace's row", run: async () => expectError(change({ op: 'update', pk: { id: carolsTask }, data: { title: 'pwned' } }), 'forbidden_scope', /writable only in workspaces you are a member of/) },
    { boundary: 'write', input: "a delete of another workspace's row", run: async () => expectError(change({ op: 'delete', pk: { id: carolsTask }, data: {} }), 'forbidden_scope', /writable only in workspaces you are a member of/) },
    {
      boundary: 'write',
      input: 'moving a row into another workspace',
      run: async () => {
        const [result] = await write([change({ op: 'update', pk: { id: sharedTask }, data: { workspace_id: seed.workspaces.other } })]);
        expect(result).toMatchObject({ status: 'rejected', reason: 'constraint', message: expect.stringMatching(/may only move to a workspace you are a member of/), row: { workspace_id: seed.workspaces.shared } });
      },
    },
    { boundary: 'write', input: 'a comment on a task of another workspace', run: async () => expectError(change({ table: 'comment', data: { workspace_id: seed.workspaces.shared, task_id: carolsTask, author_id: seed.users.alice, body: 'x' } }), 'forbidden_reference', /task_id must name a task of this row's workspace/) },
    {
      boundary: 'write',
      input: 'a change id replayed with other content',
      writes: true,
      run: async () => {
        const first = change({ data: { workspace_id: seed.workspaces.shared, project_id: seed.projects.launch, title: 'original' } });
        expect((await write([first]))[0]).toMatchObject({ status: 'applied' });
        const [again] = await write([first]);
        expect(again).toMatchObject({ status: 'applied', duplicate: true });
        await expectError({ ...first, data: { ...first.data, title: 'swapped' } }, 'replayed_change', /changeId/);
        expect(await db.query(`SELECT title FROM task WHERE id = $1`, [first.pk.id])).toEqual([{ title: 'original' }]);
      },
    },
    {
      boundary: 'write',
      input: 'an update sent before its insert (reordered)',
      writes: true,
      run: async () => {
        const id = randomUUID();
        const [early] = await write([change({ op: 'update', pk: { id }, data: { title: 'too early' } })]);
        expect(early).toMatchObject({ status: 'rejected', reason: 'not_found', row: null });
        expect(await db.query(`SELECT 1 FROM task WHERE id = $1`, [id])).toEqual([]);
        expect((await write([change({ pk: { id } })]))[0]).toMatchObject({ status: 'applied' });
      },
    },
    {
      boundary: 'write',
      input: 'SQL in a value (stored as text, nothing run)',
      writes: true,
      run: async () => {
        const title = `'); DROP TABLE task; --`;
        const insert = change({ data: { workspace_id: seed.workspaces.shared, project_id: seed.projects.launch, title, labels: ['"; DELETE FROM comment; --'] } });
        expect((await write([insert]))[0]).toMatchObject({ status: 'applied' });
        expect(await db.query(`SELECT title, labels FROM task WHERE id = $1`, [insert.pk.id])).toEqual([{ title, labels: ['"; DELETE FROM comment; --'] }]);
      },
    },
    {
      boundary: 'write',
      input: 'a batch mixing valid and invalid changes',
      writes: true,
      run: async () => {
        const good = change({});
        const results = await write([good, change({ table: 'nope' }), change({ data: { ...good.data, status: 'gone' } })]);
        expect(results.map((result) => result.status)).toEqual(['applied', 'error', 'error']);
        expect(await db.query(`SELECT count(*)::int AS n FROM task WHERE id = $1`, [good.pk.id])).toEqual([{ n: 1 }]);
      },
    },

    // The HTTP API.
    { boundary: 'http', input: 'a write with no token', run: async () => expectHttp(await post({ clientId: CLIENT, changes: [change({})] }, { token: null }), 401, 'unauthenticated', /missing token/) },
    { boundary: 'http', input: 'a write with a forged token', run: async () => expectHttp(await post({ clientId: CLIENT, changes: [change({})] }, { token: await new Tokens('another-secret-that-is-long-enough').issue(seed.users.alice) }), 401, 'unauthenticated', /not valid/) },
    { boundary: 'http', input: 'a write with an expired token', run: async () => expectHttp(await post({ clientId: CLIENT, changes: [change({})] }, { token: await tokens.issue(seed.users.alice, Math.floor(Date.now() / 1000) - 10) }), 401, 'unauthenticated', /expired/) },
    { boundary: 'http', input: 'a token that is not a JWT', run: async () => expectHttp(await post({ clientId: CLIENT, changes: [change({})] }, { token: 'a.b.c' }), 401, 'unauthenticated', /not valid/) },
    { boundary: 'http', input: 'a body that is not JSON', run: async () => expectHttp(await post(null, { raw: '{"clientId": "a", "changes": [' }), 400, 'invalid_request', /JSON/) },
    { boundary: 'http', input: 'a body of another media type', run: async () => expectHttp(await post(null, { raw: 'clientId=a', contentType: 'text/plain' }), 415, 'unsupported_media_type', /application\/json/) },
    { boundary: 'http', input: 'a batch without a client id', run: async () => expectHttp(await post({ changes: [change({})] }), 400, 'invalid_batch', /clientId/) },
    { boundary: 'http', input: 'a batch with an unknown field', run: async () => expectHttp(await post({ clientId: CLIENT, changes: [change({})], sneaky: 1 }), 400, 'invalid_batch', /Unrecognized key/) },
    { boundary: 'http', input: 'a batch of 501 changes', run: async () => expectHttp(await post({ clientId: CLIENT, changes: Array.from({ length: 501 }, () => change({})) }), 400, 'invalid_batch', /changes/) },
    { boundary: 'http', input: 'a body over 2 MB', run: async () => expectHttp(await post(null, { raw: JSON.stringify({ clientId: CLIENT, changes: [change({ data: { title: 'y'.repeat(3 * 1024 * 1024) } })] }) }), 413, 'too_large', /at most/) },
    { boundary: 'http', input: "a batch under another user's client id", run: async () => expectHttp(await post({ clientId: CLIENT, changes: [change({})] }, { token: await tokens.issue(seed.users.bob) }), 403, 'forbidden_client', /belongs to another user/) },
    {
      boundary: 'http',
      input: 'a route that does not exist',
      run: async () => {
        const response = await fetch(`${server.url}/admin/../../etc/passwd`);
        expect(response.status).toBe(404);
        expect(await response.json()).toMatchObject({ error: { code: 'not_found' } });
      },
    },

    // Configuration of the server process.
    { boundary: 'configuration', input: 'a port that is not a number', run: async () => { const r = startServerWith({ PORT: 'eighty' }); expect(r.code).toBe(1); expect(r.output).toMatch(/Invalid configuration: PORT/); } },
    { boundary: 'configuration', input: 'a JWT secret that is too short', run: async () => { const r = startServerWith({ WALSYNC_JWT_SECRET: 'short' }); expect(r.code).toBe(1); expect(r.output).toMatch(/WALSYNC_JWT_SECRET must be at least 16 characters/); } },
    { boundary: 'configuration', input: 'SQL in the slot name', run: async () => { const r = startServerWith({ WALSYNC_SLOT: 'walsync; DROP TABLE task' }); expect(r.code).toBe(1); expect(r.output).toMatch(/WALSYNC_SLOT must be a lowercase slot name/); } },
    { boundary: 'configuration', input: 'production without a JWT secret', run: async () => { const r = startServerWith({ NODE_ENV: 'production', WALSYNC_JWT_SECRET: undefined }); expect(r.code).toBe(1); expect(r.output).toMatch(/WALSYNC_JWT_SECRET must be set when NODE_ENV=production/); } },
    { boundary: 'configuration', input: 'production with the development JWT secret', run: async () => { const r = startServerWith({ NODE_ENV: 'production', WALSYNC_JWT_SECRET: DEV_JWT_SECRET }); expect(r.code).toBe(1); expect(r.output).toMatch(/development JWT secret is refused/); } },
    { boundary: 'configuration', input: 'a database URL of another scheme', run: async () => { const r = startServerWith({ DATABASE_URL: 'mysql://root:hunter2secret@127.0.0.1/app' }); expect(r.code).toBe(1); expect(r.output).toMatch(/unsupported scheme mysql/); expect(r.output).not.toContain('hunter2secret'); } },
    { boundary: 'configuration', input: 'no snapshot allowed at all', run: async () => { const r = startServerWith({ WALSYNC_SNAPSHOTS_PER_PROCESS: '0' }); expect(r.code).toBe(1); expect(r.output).toMatch(/WALSYNC_SNAPSHOTS_PER_PROCESS must be a whole number from 1 to 100/); } },
    { boundary: 'configuration', input: 'an unknown command-line flag', run: async () => { const r = startServerWith({}, ['--drop-everything']); expect(r.code).toBe(1); expect(r.output).toMatch(/bad arguments: unknown option '--drop-everything'/); } },
  ];

  it('has at least 40 distinct hostile inputs', () => {
    expect(new Set(cases.map((each) => each.input)).size).toBe(cases.length);
    expect(cases.length).toBeGreaterThanOrEqual(40);
  });

  it.each(cases)('$boundary: $input', async ({ run, writes }) => {
    const before = await digest();
    await run();
    if (!writes) expect(await digest(), 'nothing may be written').toBe(before);
    // Another user's session still streams, and the server answers health checks.
    const name = `still streaming ${++pings}`;
    await db.query(`UPDATE project SET name = $2 WHERE id = $1`, [seed.projects.launch, name]);
    await bystander.next((message) => message.type === 'changes' && message.changes.some((each: { data?: { name?: string } }) => each.data?.name === name));
    expect((await (await fetch(`${server.url}/health`)).json()).status).toBe('ok');
  });
});
