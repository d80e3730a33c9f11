import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { type ServerProcess, type SyncFixture, startServerProcess, startSyncFixture, waitFor } from '@walsync/test-support';
import { type SyncClient, SyncClientError, createSyncClient } from '@walsync/web';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * The client says where it stands: it connects with the server's origin or its /sync endpoint, a
 * URL that is not a walsync server is a clear error (never a silent offline), and a server that
 * stops answering without closing the socket shows as offline within 10 s.
 */
describe('the connection tells the truth', () => {
  let fixture: SyncFixture;

  beforeAll(async () => {
    fixture = await startSyncFixture('connection');
  });
  afterAll(async () => {
    await fixture?.dispose();
  });

  const dataDir = (name: string) => path.join(fixture.scratch.dir, name);

  it('connects when given the sync endpoint itself (ws://host/sync), as with the origin', async () => {
    const endpoint = `${fixture.url.replace(/^http/, 'ws')}/sync`;
    const client = await createSyncClient({ url: endpoint, token: fixture.token, dataDir: 'memory://' });
    try {
      await client.ready;
      await waitFor('up to date', () => client.status === 'up-to-date');
      expect((await client.db.query(`SELECT 1 FROM workspace WHERE id = $1`, [fixture.seed.workspaces.shared])).rows).toHaveLength(1);
    } finally {
      await client.close();
    }
  });

  it('says syncing, not up-to-date, while a reopened replica catches up on what happened while it was closed', async () => {
    const { db, seed, url, token } = fixture;
    await db.query(`INSERT INTO task (workspace_id, project_id, title) SELECT $1, $2, 'away ' || g FROM generate_series(1, 300) g`, [seed.workspaces.shared, seed.projects.launch]);
    const first = await createSyncClient({ url, token, dataDir: dataDir('catching-up') });
    await first.ready;
    await waitFor('up to date', () => first.status === 'up-to-date');
    await first.close();
    // While it is closed: 300 rows change, in one transaction.
    await db.query(`UPDATE task SET title = title || ' (changed)' WHERE title LIKE 'away %'`);
    const reopened = await createSyncClient({ url, token, dataDir: dataDir('catching-up') });
    let applied = 0;
    const seen: Array<{ status: string; applied: number }> = [];
    reopened.on('pull:applied', (event) => (applied += event.changes));
    reopened.on('status', (status) => seen.push({ status, applied }));
    try {
      await reopened.ready;
      await waitFor('up to date', () => reopened.status === 'up-to-date');
      // The first up-to-date comes once the 300 changes are in; until then it was syncing.
      expect(seen.find((each) => each.status === 'up-to-date')?.applied).toBe(300);
      expect(seen.map((each) => each.status)).toContain('syncing');
      expect((await reopened.db.query(`SELECT count(*)::int AS n FROM task WHERE title LIKE 'away % (changed)'`)).rows[0]).toEqual({ n: 300 });
    } finally {
      await reopened.close();
    }
  });

  it('says up-to-date only with what was committed before its hello, also when capture has not stored that yet', async () => {
    const { db, seed, url, token } = fixture;
    const first = await createSyncClient({ url, token, dataDir: dataDir('capture-behind') });
    await first.ready;
    await waitFor('up to date', () => first.status === 'up-to-date');
    await first.close();
    // While this lock is held capture cannot store anything: the commit below is in WAL, not in change_history.
    const holder = await db.pool.connect();
    let reopened: SyncClient | undefined;
    try {
      await holder.query(`BEGIN; LOCK TABLE change_history IN SHARE MODE`);
      await db.query(`INSERT INTO task (workspace_id, project_id, title) VALUES ($1, $2, 'committed before the hello')`, [seed.workspaces.shared, seed.projects.launch]);
      reopened = await createSyncClient({ url, token, dataDir: dataDir('capture-behind') });
      const seen: string[] = [];
      reopened.on('status', (status) => seen.push(status));
      await waitFor('syncing', () => seen.includes('syncing'));
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(seen).not.toContain('up-to-date');
      await holder.query('COMMIT');
      await waitFor('up to date', () => reopened!.status === 'up-to-date');
      expect((await reopened.db.query(`SELECT count(*)::int AS n FROM task WHERE title = 'committed before the hello'`)).rows[0]).toEqual({ n: 1 });
    } finally {
      await holder.query('ROLLBACK').catch(() => undefined);
      holder.release();
      await reopened?.close();
    }
  });

  it('refuses a URL that cannot be a walsync server before opening anything', async () => {
    for (const url of ['localhost:3000', 'not a url', 'ftp://127.0.0.1/sync', `${fixture.url.replace(/^http/, 'ws')}/elsewhere`, 'http://user:secret@127.0.0.1:1/']) {
      const refused = await createSyncClient({ url, token: fixture.token, dataDir: 'memory://' }).then(
        () => undefined,
        (error: unknown) => error,
      );
      expect(SyncClientError.is(refused, 'bad_url'), `${url}: ${String(refused)}`).toBe(true);
      expect((refused as Error).message).not.toContain('secret');
    }
  });

  /** A new replica against `url`: its errors, and how its ready settled. */
  async function tryUrl(url: string, name: string) {
    const client = await createSyncClient({ url, token: fixture.token, dataDir: dataDir(name) });
    const errors: SyncClientError[] = [];
    client.on('error', (error) => errors.push(error as SyncClientError));
    const ready = await client.ready.then(
      () => 'resolved',
      (error: Error) => error,
    );
    return { client, errors, ready };
  }

  it('reports a server that is not walsync with a clear error and a rejected ready, and stops retrying', async () => {
    const other = createServer((_request, response) => response.writeHead(404, { 'content-type': 'text/html' }).end('<h1>Not Found</h1>'));
    await new Promise<void>((resolve) => other.listen(0, '127.0.0.1', resolve));
    let requests = 0;
    other.on('request', () => (requests += 1));
    const { client, errors, ready } = await tryUrl(`http://127.0.0.1:${(other.address() as AddressInfo).port}`, 'not-walsync');
    try {
      expect(ready).toMatchObject({ code: 'bad_url', message: expect.stringMatching(/is not a walsync sync endpoint: it answered HTTP 404/) });
      expect(errors.map((error) => error.code)).toEqual(['bad_url']);
      expect(client.status).toBe('error');
      await expect(client.flush()).rejects.toMatchObject({ code: 'bad_url' });
      const seen = requests;
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      expect(requests).toBe(seen);
    } finally {
      await client.close();
      other.close();
    }
  });

  it('reports a walsync server under the wrong path the same way', async () => {
    const { client, errors, ready } = await tryUrl(`${fixture.url}/api`, 'wrong-path');
    try {
      expect(ready).toMatchObject({ code: 'bad_url' });
      expect(errors[0]!.message).toContain(`${fixture.url.replace(/^http/, 'ws')}/api/sync`);
    } finally {
      await client.close();
    }
  });

  it('keeps a replica that synced before usable when its URL turns out wrong, and says so', async () => {
    const first = await createSyncClient({ url: fixture.url, token: fixture.token, dataDir: dataDir('moved') });
    await first.ready;
    await first.close();
    const other = createServer((_request, response) => response.writeHead(200).end('a web page'));
    await new Promise<void>((resolve) => other.listen(0, '127.0.0.1', resolve));
    const client = await createSyncClient({ url: `http://127.0.0.1:${(other.address() as AddressInfo).port}`, token: fixture.token, dataDir: dataDir('moved') });
    const errors: SyncClientError[] = [];
    client.on('error', (error) => errors.push(error as SyncClientError));
    try {
      await client.ready;
      await waitFor('the bad_url error', () => errors.length > 0);
      expect(errors[0]).toMatchObject({ code: 'bad_url' });
      expect(client.status).toBe('error');
      expect((await client.db.query(`SELECT 1 FROM workspace`)).rows.length).toBeGreaterThan(0);
    } finally {
      await client.close();
      other.close();
    }
  });

  it('retries quietly while nothing answers at all (the server is only away)', async () => {
    const gone = `http://127.0.0.1:1`;
    const client = await createSyncClient({ url: gone, token: fixture.token, dataDir: dataDir('away') });
    const errors: Error[] = [];
    client.on('error', (error) => errors.push(error));
    try {
      await waitFor('offline', () => client.status === 'offline');
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      expect(errors).toEqual([]);
      expect(client.status).toBe('offline');
    } finally {
      await client.close();
    }
  });

  describe('with a server process that stops answering', () => {
    let server: ServerProcess;
    let client: SyncClient | undefined;

    beforeAll(async () => {
      server = await startServerProcess(fixture.db.url);
    });
    afterAll(async () => {
      process.kill(server.pid, 'SIGCONT');
      await client?.close();
      await server?.stop();
    });

    it('shows offline within 10 s of a SIGSTOP, and comes back when the server does', async () => {
      client = await createSyncClient({ url: server.url, token: fixture.token, dataDir: dataDir('silent') });
      await client.ready;
      await waitFor('up to date', () => client!.status === 'up-to-date');
      process.kill(server.pid, 'SIGSTOP');
      const stopped = Date.now();
      await waitFor('offline', () => client!.status === 'offline', 12_000);
      const took = Date.now() - stopped;
      expect(took).toBeLessThanOrEqual(10_000);
      process.kill(server.pid, 'SIGCONT');
      await waitFor('up to date again', () => client!.status === 'up-to-date', 20_000);
      await fixture.db.query(`INSERT INTO task (workspace_id, project_id, title) VALUES ($1, $2, 'after the pause')`, [fixture.seed.workspaces.shared, fixture.seed.projects.launch]);
      await waitFor('the row written after the pause', async () => (await client!.db.query(`SELECT 1 FROM task WHERE title = 'after the pause'`)).rows.length === 1);
    });
  });
});
