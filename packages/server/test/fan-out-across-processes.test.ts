import { Tokens } from '@walsync/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BareClient } from './support/bare-client';
import { type ServerProcess, TEST_JWT_SECRET, type TestDatabase, postgresTargets, seedWorkspaces, startDatabase, startServerProcess } from '@walsync/test-support';

describe('two server processes on one database', () => {
  let db: TestDatabase;
  const servers: ServerProcess[] = [];
  const clients: BareClient[] = [];
  beforeAll(async () => {
    db = await startDatabase(postgresTargets()[0]!);
  });
  afterAll(async () => {
    for (const client of clients) client.close();
    for (const server of servers) await server.kill().catch(() => undefined);
    await db?.dispose();
  });

  it('deliver every change to clients on either process, also after the leader is killed', async () => {
    const seed = await seedWorkspaces(db);
    servers.push(await startServerProcess(db.url), await startServerProcess(db.url));
    const roles = await Promise.all(servers.map(async (server) => (await server.health()).role));
    const leader = servers[roles.indexOf('leader')]!;
    const follower = servers[roles.indexOf('follower')]!;
    const token = await new Tokens(TEST_JWT_SECRET).issue(seed.users.alice);
    const onEach = await Promise.all(
      [leader, follower].map(async (server, index) => {
        const client = await BareClient.connect(server.url);
        clients.push(client);
        client.hello({ token, clientId: `fan-${index}` });
        await client.next('welcome');
        await client.snapshot();
        return client;
      }),
    );
    const received = (client: BareClient, name: string) =>
      client.next((message) => message.type === 'changes' && message.changes.some((change: any) => change.data?.name === name), 15_000);

    await db.query(`UPDATE project SET name = 'seen by both' WHERE id = $1`, [seed.projects.launch]);
    await Promise.all(onEach.map((client) => received(client, 'seen by both')));

    // The follower's client keeps receiving when the leader dies: the follower takes over capture.
    await leader.kill();
    // Twenty rows (one row changed twenty times may reach a client as its last version only).
    for (let i = 0; i < 20; i++) await db.query(`INSERT INTO project (workspace_id, name) VALUES ($1, $2)`, [seed.workspaces.shared, `after takeover ${i}`]);
    await received(onEach[1]!, 'after takeover 19');
    const names = onEach[1]!.messages
      .filter((message) => message.type === 'changes')
      .flatMap((message) => message.changes.map((change: any) => change.data?.name))
      .filter((name) => String(name).startsWith('after takeover'));
    expect(names).toEqual(Array.from({ length: 20 }, (_, i) => `after takeover ${i}`));
    expect((await follower.health()).role).toBe('leader');
  });
});
