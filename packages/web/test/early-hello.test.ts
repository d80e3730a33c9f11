import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { Tokens, type WalsyncServer } from '@walsync/server';
import { createSyncClient } from '@walsync/web';
import { WebSocket, WebSocketServer } from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_JWT_SECRET, type TestDatabase, postgresTargets, scratchDir, seedWorkspaces, startDatabase, startServer, waitFor } from '@walsync/test-support';

/** A WebSocket relay in front of the server that records each session's hello and when it came. */
async function helloRecorder(serverUrl: string) {
  const wss = new WebSocketServer({ port: 0 });
  await new Promise((resolve) => wss.once('listening', resolve));
  const hellos: Array<{ at: number; position: string | null }> = [];
  const upstreamUrl = `${serverUrl.replace(/^http/, 'ws')}/sync`;
  wss.on('connection', (socket) => {
    const upstream = new WebSocket(upstreamUrl);
    const waiting: string[] = [];
    socket.on('message', (data) => {
      const text = data.toString();
      const message = JSON.parse(text) as { type: string; position: string | null };
      if (message.type === 'hello') hellos.push({ at: performance.now(), position: message.position });
      if (upstream.readyState === WebSocket.OPEN) upstream.send(text);
      else waiting.push(text);
    });
    upstream.on('open', () => waiting.splice(0).forEach((text) => upstream.send(text)));
    upstream.on('message', (data) => socket.readyState === WebSocket.OPEN && socket.send(data.toString()));
    upstream.on('close', (code) => socket.close(code >= 4000 ? code : 1000));
    upstream.on('error', () => socket.terminate());
    socket.on('close', () => upstream.close());
  });
  return {
    url: `http://127.0.0.1:${(wss.address() as AddressInfo).port}`,
    hellos,
    close: () => {
      for (const client of wss.clients) client.terminate();
      return new Promise((resolve) => wss.close(resolve));
    },
  };
}

describe('a returning Node client says hello while its replica opens', () => {
  let db: TestDatabase;
  let server: WalsyncServer;
  let relay: Awaited<ReturnType<typeof helloRecorder>>;
  let seed: Awaited<ReturnType<typeof seedWorkspaces>>;
  let token: string;
  const scratch = scratchDir('early-hello');
  beforeAll(async () => {
    db = await startDatabase(postgresTargets()[0]!);
    server = await startServer(db.url);
    relay = await helloRecorder(server.url);
    seed = await seedWorkspaces(db);
    token = await new Tokens(TEST_JWT_SECRET).issue(seed.users.alice);
  });
  afterAll(async () => {
    await relay?.close();
    await server?.stop();
    await db?.dispose();
    scratch.remove();
  });

  /** Opens the replica, waits until it holds `title`, and reports the hellos its start sent. */
  const reopen = async (dataDir: string, title: string) => {
    const before = relay.hellos.length;
    const began = performance.now();
    const client = await createSyncClient({ url: relay.url, token, dataDir });
    const created = performance.now();
    await waitFor(`the replica to hold ${title}`, async () => (await client.db.query(`SELECT 1 FROM task WHERE title = $1`, [title])).rows.length > 0, 20_000);
    return { client, hellos: relay.hellos.slice(before).map((hello) => ({ ...hello, at: hello.at - began })), created: created - began };
  };
  const awayWrite = (title: string) =>
    db.query(`INSERT INTO task (workspace_id, project_id, title) VALUES ($1, $2, $3)`, [seed.workspaces.shared, seed.projects.launch, title]);

  it('keeps its hello at close and sends it before the replica is open; the session it opened catches the replica up', async () => {
    const dataDir = path.join(scratch.dir, 'returning');
    const first = await createSyncClient({ url: relay.url, token, dataDir });
    await first.ready;
    await first.close();
    const saved = JSON.parse(readFileSync(path.join(dataDir, 'walsync.hello.json'), 'utf8')) as { position: string };
    expect(saved.position).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);

    await awayWrite('written while away');
    const { client, hellos, created } = await reopen(dataDir, 'written while away');
    try {
      // One session, its hello sent while PGlite still started (before createSyncClient returned).
      expect(hellos).toEqual([{ at: expect.any(Number), position: saved.position }]);
      expect(hellos[0]!.at).toBeLessThan(created);
      // Taken once: a start that does not close leaves no hello behind.
      expect(existsSync(path.join(dataDir, 'walsync.hello.json'))).toBe(false);
    } finally {
      await client.close();
    }
  });

  it('closes an early session whose hello is not the replica\'s (a stale or altered file) and says its own: nothing is missed', async () => {
    const dataDir = path.join(scratch.dir, 'altered');
    const first = await createSyncClient({ url: relay.url, token, dataDir });
    await first.ready;
    await first.close();
    const file = path.join(dataDir, 'walsync.hello.json');
    const saved = JSON.parse(readFileSync(file, 'utf8')) as { position: string };
    // A position past everything the replica holds: had the early session been used, the rows
    // written meanwhile would never arrive.
    writeFileSync(file, JSON.stringify({ ...saved, position: 'FFFFFFF/0' }));

    await awayWrite('written while the file was altered');
    const { client, hellos } = await reopen(dataDir, 'written while the file was altered');
    try {
      expect(hellos.map((hello) => hello.position)).toEqual(['FFFFFFF/0', saved.position]);
    } finally {
      await client.close();
    }
  });

  it('ignores a hello file that is not one', async () => {
    const dataDir = path.join(scratch.dir, 'garbage');
    const first = await createSyncClient({ url: relay.url, token, dataDir });
    await first.ready;
    await first.close();
    const saved = JSON.parse(readFileSync(path.join(dataDir, 'walsync.hello.json'), 'utf8')) as { position: string };
    writeFileSync(path.join(dataDir, 'walsync.hello.json'), '{"clientId": 7');

    await awayWrite('written after the file broke');
    const { client, hellos, created } = await reopen(dataDir, 'written after the file broke');
    try {
      expect(hellos.map((hello) => hello.position)).toEqual([saved.position]);
      expect(hellos[0]!.at).toBeGreaterThan(created);
    } finally {
      await client.close();
    }
  });
});
