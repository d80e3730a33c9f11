import { freePort } from '@walsync/db/server';
import { migrations } from '@walsync/db/browser';
import { createSyncClient } from '@walsync/web';
import { afterAll, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { waitFor } from '@walsync/test-support';

type Script = Array<Record<string, unknown> | string | ((hello: { schemaVersion: string | null }) => Record<string, unknown>)>;

/**
 * A server that speaks the protocol but sends what it is told to: the bad input under test. Given
 * several scripts, each connection plays the next (the last one repeats).
 */
async function hostileServer(scripts: Script | Script[]) {
  const plays: Script[] = Array.isArray(scripts[0]) ? (scripts as Script[]) : [scripts as Script];
  const port = await freePort();
  const sockets = new WebSocketServer({ port, host: '127.0.0.1', path: '/sync' });
  let connections = 0;
  sockets.on('connection', (socket) => {
    const script = plays[Math.min(connections, plays.length - 1)]!;
    connections += 1;
    socket.once('message', (data) => {
      const hello = JSON.parse(data.toString());
      for (const entry of script) {
        const message = typeof entry === 'function' ? entry(hello) : entry;
        socket.send(typeof message === 'string' ? message : JSON.stringify(message));
      }
    });
  });
  return { url: `http://127.0.0.1:${port}`, connections: () => connections, close: () => new Promise<void>((resolve) => sockets.close(() => resolve())) };
}

/** A welcome into `workspace` with the migrations the client lacks (none when its replica came from the migrated template). */
function welcomeTo(workspace: string) {
  return (hello: { schemaVersion: string | null }) => ({
    type: 'welcome',
    userId: 'u',
    clientId: 'c',
    schemaVersion: migrations.at(-1)!.name,
    migrations: migrations.slice(migrations.findIndex((each) => each.name === hello.schemaVersion) + 1),
    workspaces: [workspace],
  });
}

describe('a client facing bad server input', () => {
  const closers: Array<() => Promise<void>> = [];
  afterAll(async () => {
    for (const close of closers.reverse()) await close();
  });

  /** A client on a new in-memory replica, connected to a server that sends `script`, and the errors it reports. */
  async function clientOf(script: Parameters<typeof hostileServer>[0]) {
    const server = await hostileServer(script);
    closers.push(server.close);
    const client = await createSyncClient({ url: server.url, token: 'unused', dataDir: 'memory://' });
    closers.push(() => client.close());
    const errors: Error[] = [];
    client.on('error', (error) => errors.push(error));
    return { server, client, errors };
  }

  it('refuses a malformed message and a batch that fails to apply: nothing applied, position unmoved, outbox intact', async () => {
    const workspace = '0b6f5b38-5d1b-4a56-9c2e-8a1b2a0c0d01';
    const welcome = welcomeTo(workspace);
    const row = (name: string) => ({ id: workspace, name, created_at: '2026-11-23T00:00:00+00:00', updated_at: '2026-11-23T00:00:00+00:00', version: 1, hlc: null, origin_client_id: null, deleted_at: null });
    // One bad input a connection: a message after a bad one is never applied (the valid batch behind each is a witness).
    const witness = { type: 'changes', position: '0/150', changes: [{ table: 'workspace', op: 'insert', data: row('after a bad message') }] };
    const { server, client, errors } = await clientOf([
      [
        welcome,
        { type: 'snapshot_start', position: '0/100', total: {}, workspaces: [workspace], replace: true },
        { type: 'snapshot_end', position: '0/100' },
        { type: 'changes', position: 'not a position', changes: [] },
        witness,
      ],
      [welcome, { type: 'up_to_date', position: '0/100' }, '{ this is not json', witness],
      [welcome, { type: 'up_to_date', position: '0/100' }, {
        type: 'changes',
        position: '0/200',
        changes: [
          {
            table: 'workspace',
            op: 'insert',
            data: row('half'),
          },
          { table: 'workspace', op: 'insert', data: { ...row('broken'), id: 'not a uuid' } },
        ],
      }, witness],
    ]);
    await client.ready;
    await client.db.query(`INSERT INTO workspace (name) VALUES ('local, unsent')`);

    await waitFor('the three bad inputs to be reported', () => errors.length >= 3);
    expect(errors.map((error) => (error as { code?: string }).code)).toEqual(expect.arrayContaining(['bad_server_message', 'apply_failed']));
    expect(errors.find((error) => (error as { code?: string }).code === 'apply_failed')!.message).toMatch(/invalid input syntax for type uuid/);
    // It stops there (status error, flush rejects) and retries on its backoff, reporting the same failure once.
    expect(client.status).toBe('error');
    await expect(client.flush()).rejects.toMatchObject({ code: 'apply_failed' });
    await waitFor('another attempt', () => server.connections() >= 4);
    expect(errors).toHaveLength(3);
    const position = (await client.db.query<{ value: string }>(`SELECT value FROM walsync_state WHERE key = 'position'`)).rows[0]?.value;
    expect(position).toBe('0/100');
    expect((await client.db.query(`SELECT name FROM workspace ORDER BY name`)).rows).toEqual([{ name: 'local, unsent' }]);
    expect((await client.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM walsync_outbox`)).rows[0]!.n).toBe(1);
    // It started over from its stored position after each, rather than giving up.
    expect(server.connections()).toBeGreaterThanOrEqual(4);
  });

  it('refuses a changes batch whose row is not an object of column values, naming where', async () => {
    const workspace = '0b6f5b38-5d1b-4a56-9c2e-8a1b2a0c0d04';
    const welcome = welcomeTo(workspace);
    const { client, errors } = await clientOf([
      welcome,
      { type: 'snapshot_start', position: '0/100', total: {}, workspaces: [workspace], replace: true },
      { type: 'snapshot_end', position: '0/100' },
      { type: 'changes', position: '0/200', changes: [{ table: 'workspace', op: 'insert', data: [workspace, 'a row as an array'] }] },
    ]);
    await client.ready;
    await waitFor('the bad batch to be reported', () => errors.length >= 1);
    expect(errors[0]).toMatchObject({ code: 'bad_server_message', message: expect.stringMatching(/changes\.0\.data.*expected an object of column values/) });
    expect((await client.db.query<{ value: string }>(`SELECT value FROM walsync_state WHERE key = 'position'`)).rows[0]?.value).toBe('0/100');
  });

  it('stores a snapshot page in the server\'s layout without parsing its rows, and refuses one whose rows are not JSON objects', async () => {
    const workspace = '0b6f5b38-5d1b-4a56-9c2e-8a1b2a0c0d03';
    const welcome = welcomeTo(workspace);
    const row = JSON.stringify({ id: workspace, name: 'from the page', created_at: '2026-11-23T00:00:00+00:00', updated_at: '2026-11-23T00:00:00+00:00', version: 1, hlc: null, origin_client_id: null, deleted_at: null });
    // Exactly as the server writes a page (SnapshotService): the client reads its rows as text.
    const page = (rows: string) => `{"type":"snapshot_batch","table":"workspace","sent":1,"total":1,"rows":${rows}}`;
    const start = { type: 'snapshot_start', position: '0/100', total: { workspace: 1 }, workspaces: [workspace], replace: true };
    const { client, errors } = await clientOf([
      [welcome, start, page('[1, 2]')],
      [welcome, start, page(`[${row}],"rows":[]`)],
      [welcome, start, page(`[${row}]`), { type: 'snapshot_end', position: '0/100' }],
    ]);
    await client.ready;
    const failures = errors.filter((error) => (error as { code?: string }).code === 'apply_failed').map((error) => error.message);
    expect(failures).toHaveLength(2);
    expect(failures[0]).toMatch(/array of objects/);
    expect(failures[1]).toMatch(/invalid input syntax for type json/);
    expect((await client.db.query(`SELECT name FROM workspace`)).rows).toEqual([{ name: 'from the page' }]);
    expect((await client.db.query<{ value: string }>(`SELECT value FROM walsync_state WHERE key = 'position'`)).rows[0]?.value).toBe('0/100');
  });

  it('skips migrations a server offers again that the replica already applied with the same checksum', async () => {
    const workspace = '0b6f5b38-5d1b-4a56-9c2e-8a1b2a0c0d02';
    // Every migration, though a replica from the migrated template has them all.
    const { client, errors } = await clientOf([
      { type: 'welcome', userId: 'u', clientId: 'c', schemaVersion: migrations.at(-1)!.name, migrations, workspaces: [workspace] },
      { type: 'snapshot_start', position: '0/100', total: {}, workspaces: [workspace], replace: true },
      { type: 'snapshot_end', position: '0/100' },
    ]);
    await client.ready;
    expect(errors).toEqual([]);
    const applied = (await client.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM client_migration WHERE "clientApplied"`)).rows[0]!.n;
    expect(applied).toBe(migrations.length);
  });
});
