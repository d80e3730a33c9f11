import { freePort } from '@walsync/db/server';
import { migrations } from '@walsync/db/browser';
import { createSyncClient } from '@walsync/web';
import { waitFor } from '@walsync/test-support';
import { afterAll, describe, expect, it } from 'vitest';
import { type WebSocket, WebSocketServer } from 'ws';

const workspace = '3d1c6f0e-9a7b-4c1e-8f0a-5b2d7c9e1a01';
const [held, added] = ['3d1c6f0e-9a7b-4c1e-8f0a-5b2d7c9e1a02', '3d1c6f0e-9a7b-4c1e-8f0a-5b2d7c9e1a03'];
const [heldTask, addedTask] = ['3d1c6f0e-9a7b-4c1e-8f0a-5b2d7c9e1a04', '3d1c6f0e-9a7b-4c1e-8f0a-5b2d7c9e1a05'];
const stamp = { created_at: '2026-12-01T00:00:00+00:00', updated_at: '2026-12-01T00:00:00+00:00', version: 1, hlc: null, origin_client_id: null, deleted_at: null, column_hlcs: {} };
const project = (id: string) => ({ id, workspace_id: workspace, name: id.slice(-2), ...stamp });
const task = (id: string, projectId: string) => ({ id, workspace_id: workspace, project_id: projectId, title: id.slice(-2), status: 'todo', position: 0, labels: [], assignee_id: null, ...stamp });
const subscription = (projectId: string) => ({ name: 'project' as const, params: { projectId } });
/** A page as the server writes it. */
const page = (table: string, rows: unknown[]) => `{"type":"snapshot_batch","table":"${table}","sent":${rows.length},"total":${rows.length},"rows":${JSON.stringify(rows)}}`;

/**
 * A subscription whose snapshot was cut short (the connection went away after some of its pages)
 * stays pending in the replica, and a new session does not hold it until the client asks again: the
 * stream may pass its rows' changes — a move out of it — before that. The rows of the cut snapshot
 * must not outlive it. The server here is scripted, so the order is exact.
 */
describe('a subscription whose snapshot was cut short', () => {
  const closers: Array<() => Promise<void>> = [];
  afterAll(async () => {
    for (const close of closers.reverse()) await close();
  });

  it('leaves none of its rows behind: its next snapshot alone says what it holds', async () => {
    const port = await freePort();
    const server = new WebSocketServer({ port, host: '127.0.0.1', path: '/sync' });
    closers.push(() => new Promise((resolve) => server.close(() => resolve())));
    const hellos: Array<{ position: string | null; subscriptions?: unknown[] }> = [];
    let current: WebSocket | undefined;
    server.on('connection', (socket) => {
      current = socket;
      const session = hellos.length;
      socket.on('message', (data) => {
        const message = JSON.parse(data.toString());
        const send = (each: unknown) => socket.send(typeof each === 'string' ? each : JSON.stringify(each));
        if (message.type === 'ping') return send({ type: 'pong' });
        if (message.type === 'hello') {
          hellos.push(message);
          send({
            type: 'welcome',
            userId: 'u',
            clientId: message.clientId,
            schemaVersion: migrations.at(-1)!.name,
            migrations: migrations.slice(migrations.findIndex((each) => each.name === message.schemaVersion) + 1),
            workspaces: [workspace],
          });
          if (session > 0) return send({ type: 'up_to_date', position: '0/100' });
          send({ type: 'snapshot_start', position: '0/100', total: { workspace: 1, project: 2, task: 1 }, workspaces: [workspace], replace: true, subscriptions: [subscription(held)] });
          send(page('workspace', [{ id: workspace, name: 'w', ...stamp }]));
          send(page('project', [project(held), project(added)]));
          send(page('task', [task(heldTask, held)]));
          return send({ type: 'snapshot_end', position: '0/100' });
        }
        if (message.type === 'subscribe') {
          // The first session sends a page of the added project, then is cut; by the second, its task moved out.
          send({ type: 'snapshot_start', position: '0/200', total: { task: session === 0 ? 2 : 0 }, workspaces: [], replace: false, subscriptions: [subscription(added)] });
          if (session === 0) return send(page('task', [task(addedTask, added)]));
          send({ type: 'snapshot_end', position: '0/200' });
        }
      });
    });

    const client = await createSyncClient({ url: `http://127.0.0.1:${port}`, token: 'unused', dataDir: 'memory://', subscriptions: [subscription(held)] });
    closers.push(() => client.close());
    await client.ready;
    const tasks = async () => (await client.db.query<{ id: string }>(`SELECT id::text FROM task ORDER BY id`)).rows.map((row) => row.id);
    const ready = client.subscribe('project', { projectId: added }).ready;
    await waitFor('the first page of the added subscription', async () => (await tasks()).includes(addedTask));
    current!.terminate();

    await ready;
    expect(hellos).toHaveLength(2);
    // The new session was told only the subscription whose rows the replica holds whole.
    expect(hellos[1]).toMatchObject({ position: '0/100', subscriptions: [subscription(held)] });
    expect(await tasks()).toEqual([heldTask]);
  });
});
