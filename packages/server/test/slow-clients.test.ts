import { CloseCodes } from '@walsync/db/server';
import { Tokens, type WalsyncServer } from '@walsync/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BareClient } from './support/bare-client';
import { TEST_JWT_SECRET, type TestDatabase, postgresTargets, seedWorkspaces, startDatabase, startServer, waitFor } from '@walsync/test-support';

describe('slow and silent clients', () => {
  let db: TestDatabase;
  let server: WalsyncServer;
  let seed: Awaited<ReturnType<typeof seedWorkspaces>>;
  beforeAll(async () => {
    db = await startDatabase(postgresTargets()[0]!);
    // A small in-memory window, so that a stalled client must catch up from change_history.
    server = await startServer(db.url, { sync: { handshakeTimeoutMs: 300 }, feed: { windowSize: 500 } });
    seed = await seedWorkspaces(db);
  });
  afterAll(async () => {
    await server?.stop();
    await db?.dispose();
  });

  it('closes a connection that sends no hello in time', async () => {
    const silent = await BareClient.connect(server.url);
    expect((await silent.closed).code).toBe(CloseCodes.handshakeTimeout);
  });

  it('stops producing for a client that does not read, and catches it up from change_history afterwards', async () => {
    const slow = await BareClient.connect(server.url);
    slow.hello({ token: await new Tokens(TEST_JWT_SECRET).issue(seed.users.alice), clientId: 'slow' });
    await slow.next('welcome');
    await slow.snapshot();
    const tcp = (slow.socket as unknown as { _socket: { pause(): void; resume(): void } })._socket;
    tcp.pause();
    // Far more than the window holds, in rows large enough to fill the socket buffers.
    for (let i = 0; i < 6; i++) {
      await db.query(`INSERT INTO task (workspace_id, project_id, title, labels) SELECT $1, $2, 'flood ' || $3 || '-' || g, to_jsonb(repeat('x', 2000)) FROM generate_series(1, 1000) g`, [
        seed.workspaces.shared,
        seed.projects.launch,
        i,
      ]);
    }
    await waitFor('capture', async () => (await db.query(`SELECT count(*)::int AS n FROM change_history WHERE table_name = 'task'`))[0]!.n === 6000);
    tcp.resume();
    const titles = new Set<string>();
    await waitFor(
      'every change to reach the slow client',
      async () => {
        for (const message of slow.messages) if (message.type === 'changes') for (const change of message.changes) titles.add(change.data?.title as string);
        return titles.size >= 6000;
      },
      30_000,
    );
    expect([...titles].filter((title) => title?.startsWith('flood ')).length).toBe(6000);
    slow.close();
  });
});
