import { randomUUID } from 'node:crypto';
import { Tokens } from '@walsync/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BareClient } from './support/bare-client';
import { type ServerProcess, TEST_JWT_SECRET, type TestDatabase, postgresTargets, seedWorkspaces, startDatabase, startServerProcess } from '@walsync/test-support';

describe('secrets in the logs', () => {
  let db: TestDatabase;
  let server: ServerProcess;
  let seed: Awaited<ReturnType<typeof seedWorkspaces>>;
  beforeAll(async () => {
    db = await startDatabase(postgresTargets()[0]!);
    seed = await seedWorkspaces(db);
    server = await startServerProcess(db.url, { LOG_LEVEL: 'trace' });
  });
  afterAll(async () => {
    await server?.stop();
    await db?.dispose();
  });

  it('never holds the JWT secret, a token or the database password, even at trace level', async () => {
    const tokens = new Tokens(TEST_JWT_SECRET);
    const token = await tokens.issue(seed.users.alice);
    const forged = await new Tokens('a-forged-secret-for-this-test-only').issue(seed.users.alice);
    // A session, a refused session, and writes over HTTP with good and bad tokens: everything that handles one.
    const session = await BareClient.connect(server.url);
    session.hello({ token, clientId: 'secrets-1' });
    await session.snapshot();
    const refused = await BareClient.connect(server.url);
    refused.hello({ token: forged, clientId: 'secrets-2' });
    await refused.closed;
    for (const bearer of [token, forged, 'not-a-token']) {
      await fetch(`${server.url}/changes`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${bearer}` },
        body: JSON.stringify({ clientId: 'secrets-1', changes: [{ changeId: randomUUID(), table: 'task', op: 'update', pk: { id: randomUUID() }, data: { title: 'x' }, hlc: 'bad' }] }),
      });
    }
    session.close();
    await server.stop();

    const output = server.output();
    expect(output).toContain('walsync server ready');
    const password = decodeURIComponent(new URL(db.url).password);
    for (const secret of [TEST_JWT_SECRET, token, forged, password]) expect(output).not.toContain(secret);
  });
});
