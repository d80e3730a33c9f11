import { randomUUID } from 'node:crypto';
import { CloseCodes, formatHlc } from '@walsync/db/server';
import { Tokens, type WalsyncServer } from '@walsync/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BareClient } from './support/bare-client';
import { TEST_JWT_SECRET, type TestDatabase, postgresTargets, seedWorkspaces, startDatabase, startServer } from '@walsync/test-support';

/** A socket that sent hello and then stops reading (the kernel's buffers fill, then the server's). */
async function silentHydration(url: string, token: string, clientId: string): Promise<BareClient> {
  const client = await BareClient.connect(url);
  client.hello({ token, clientId });
  await client.next('welcome');
  (client.socket as unknown as { _socket: { pause(): void } })._socket.pause();
  return client;
}

/** ~21 MB in carol's own workspace: 360 tasks with 60 KB titles, and a comment on each. */
async function fillCarolsWorkspace(db: TestDatabase, seed: Awaited<ReturnType<typeof seedWorkspaces>>): Promise<void> {
  await db.query(`INSERT INTO task (workspace_id, project_id, title) SELECT $1, $2, repeat(md5(g::text), 1875) FROM generate_series(1, 360) g`, [
    seed.workspaces.other,
    seed.projects.secret,
  ]);
  await db.query(`INSERT INTO comment (workspace_id, task_id, author_id, body) SELECT workspace_id, id, $2, 'seen' FROM task WHERE workspace_id = $1`, [
    seed.workspaces.other,
    seed.users.carol,
  ]);
}

async function timed<T>(work: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const started = performance.now();
  const value = await work();
  return { ms: performance.now() - started, value };
}

describe.each(postgresTargets())('one user cannot slow the others ($name)', (target) => {
  const tokens = new Tokens(TEST_JWT_SECRET);
  let db: TestDatabase;
  let server: WalsyncServer;
  let seed: Awaited<ReturnType<typeof seedWorkspaces>>;
  const hostile: BareClient[] = [];

  beforeAll(async () => {
    db = await startDatabase(target);
    // Heartbeats far apart: carol's silent sockets stay for the whole test (the ping check would drop them after 2 intervals).
    server = await startServer(db.url, { sync: { heartbeatMs: 120_000 }, snapshots: { stallMs: 60_000 } });
    seed = await seedWorkspaces(db);
    await fillCarolsWorkspace(db, seed);
  }, 60_000);
  afterAll(async () => {
    for (const client of hostile) client.socket.terminate();
    await server?.stop();
    await db?.dispose();
  });

  it('keeps hello, /health and writes fast for everyone while 12 sockets of one user hold unread snapshots', async () => {
    const carol = await tokens.issue(seed.users.carol);
    for (let i = 0; i < 12; i++) hostile.push(await silentHydration(server.url, carol, `carol-${i}`));
    // Let the snapshots run until the sockets are full.
    await new Promise((resolve) => setTimeout(resolve, 1_500));

    const alice = await tokens.issue(seed.users.alice);
    const hello = await timed(async () => {
      const client = await BareClient.connect(server.url);
      client.hello({ token: alice, clientId: 'alice-fair' });
      await client.next('welcome');
      await client.next('snapshot_end');
      return client;
    });
    hello.value.close();
    const health = await timed(async () => (await fetch(`${server.url}/health`)).status);
    const write = await timed(async () => {
      const response = await fetch(`${server.url}/changes`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${alice}` },
        body: JSON.stringify({
          clientId: 'alice-fair',
          changes: [
            {
              changeId: randomUUID(),
              table: 'task',
              op: 'insert',
              pk: { id: randomUUID() },
              data: { workspace_id: seed.workspaces.shared, project_id: seed.projects.launch, title: 'still fast' },
              hlc: formatHlc({ wallMs: Date.now(), counter: 0, node: 'alice-fair' }),
            },
          ],
        }),
      });
      return ((await response.json()) as { results: Array<{ status: string }> }).results[0]!.status;
    });

    expect(health.value).toBe(200);
    expect(write.value).toBe('applied');
    // Another user's hello → welcome → their whole (small) snapshot, /health and a write each within a second.
    expect({ hello: hello.ms < 1_000, health: health.ms < 1_000, write: write.ms < 1_000 }).toEqual({ hello: true, health: true, write: true });
    // carol's snapshots take turns: at most two of hers run, the rest wait without holding a connection.
    const connections = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'walsync-snapshots' AND state <> 'idle'`);
    expect(connections[0]!.n).toBeLessThanOrEqual(2);
  }, 60_000);
});

describe('a snapshot nobody reads', () => {
  let db: TestDatabase;
  let server: WalsyncServer;
  let seed: Awaited<ReturnType<typeof seedWorkspaces>>;
  beforeAll(async () => {
    db = await startDatabase(postgresTargets()[0]!);
    server = await startServer(db.url, { snapshots: { stallMs: 1_000, perUser: 1 } });
    seed = await seedWorkspaces(db);
    await fillCarolsWorkspace(db, seed);
  }, 60_000);
  afterAll(async () => {
    await server?.stop();
    await db?.dispose();
  });

  it('is ended with 4410 once the client stops reading, and its place goes to the next', async () => {
    const carol = await new Tokens(TEST_JWT_SECRET).issue(seed.users.carol);
    const stalled = await silentHydration(server.url, carol, 'carol-stalled');
    // carol may run one snapshot at a time: this one waits until the stalled one is ended.
    const reader = await BareClient.connect(server.url);
    reader.hello({ token: carol, clientId: 'carol-reader' });
    const start = await reader.next('snapshot_start', 20_000);
    expect(start.total.task).toBe(360);
    await reader.next('snapshot_end', 30_000);
    reader.close();
    // The stalled client, once it reads again, finds what it was sent and then the close: 4410, resume later.
    (stalled.socket as unknown as { _socket: { resume(): void } })._socket.resume();
    expect((await stalled.closed).code).toBe(CloseCodes.stalled);
    expect(stalled.messages.some((message) => message.type === 'snapshot_end')).toBe(false);
  }, 60_000);
});
