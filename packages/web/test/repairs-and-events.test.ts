import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parsePosition } from '@walsync/db/server';
import { pruneHistory } from '@walsync/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type SyncFixture, startSyncFixture, waitFor } from '@walsync/test-support';
import { type SyncClient, type SyncEvents, createSyncClient } from '@walsync/web';

const EVENTS: Array<keyof SyncEvents> = ['captured', 'push', 'pull:received', 'pull:applied', 'conflict', 'error', 'bootstrap:start', 'bootstrap:progress', 'bootstrap:complete', 'status'];

function record(client: SyncClient): Array<{ name: string; args: unknown[] }> {
  const events: Array<{ name: string; args: unknown[] }> = [];
  for (const name of EVENTS) client.on(name, (...args: unknown[]) => events.push({ name, args }));
  return events;
}

/** Every file's bytes under a directory, hashed: to prove a directory was left as it was. */
function fingerprint(dir: string): string {
  const hash = createHash('sha256');
  const walk = (at: string) => {
    for (const name of readdirSync(at).sort()) {
      const full = path.join(at, name);
      if (name.startsWith('walsync.lock')) continue; // the lock and its owner record are ours, not the database's
      if (statSync(full).isDirectory()) walk(full);
      else hash.update(full).update(readFileSync(full));
    }
  };
  walk(dir);
  return hash.digest('hex');
}

describe('client repairs and events', () => {
  let fixture: SyncFixture;
  let db: SyncFixture['db'];
  let seed: SyncFixture['seed'];
  let token: string;
  let scratch: SyncFixture['scratch'];
  const url = () => fixture.url;
  const task = (title: string) => db.query(`INSERT INTO task (workspace_id, project_id, title) VALUES ($1, $2, $3) RETURNING id`, [seed.workspaces.shared, seed.projects.launch, title]);

  beforeAll(async () => {
    fixture = await startSyncFixture('web-repairs');
    ({ db, seed, token, scratch } = fixture);
  });
  afterAll(async () => {
    await fixture?.dispose();
  });

  it('hydrates without a storm: progress per page, no conflict, error, capture or pull event for historical data', async () => {
    await db.query(`INSERT INTO task (workspace_id, project_id, title) SELECT $1, $2, 'history ' || i FROM generate_series(1, 25000) i`, [seed.workspaces.shared, seed.projects.launch]);
    await db.query(`UPDATE task SET title = title || ' (edited)' WHERE title LIKE 'history 1%'`);
    await db.query(`DELETE FROM task WHERE title LIKE 'history 2%'`);
    const client = await createSyncClient({ url: url(), token, dataDir: 'memory://' });
    const notifications: string[] = [];
    await client.db.listen('walsync_outbox', (payload) => notifications.push(payload));
    const events = record(client);
    try {
      await client.ready;
      const names = events.map((event) => event.name);
      const complete = names.indexOf('bootstrap:complete');
      expect(names.slice(0, 2)).toContain('bootstrap:start');
      expect(complete).toBeGreaterThan(0);
      const during = names.slice(0, complete);
      for (const quiet of ['conflict', 'error', 'captured', 'push', 'pull:received', 'pull:applied']) expect(during).not.toContain(quiet);
      // One progress event per page (about 2 MB of rows: thousands of these), not per row.
      const progress = events.filter((event) => event.name === 'bootstrap:progress');
      const rows = (await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM task WHERE workspace_id = $1`, [seed.workspaces.shared]))[0]!.n;
      expect(progress.length).toBeGreaterThanOrEqual(Math.ceil(rows / 10_000));
      expect(progress.length).toBeLessThanOrEqual(Math.ceil(rows / 2_000) + 5);
      expect(progress.at(-1)!.args[0]).toMatchObject({ sent: expect.any(Number), total: expect.any(Number) });
      expect(names.filter((name) => name === 'status').length).toBeLessThanOrEqual(3);
      expect(notifications).toEqual([]);
      expect((await client.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM walsync_outbox`)).rows[0]!.n).toBe(0);
      expect((await client.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM task`)).rows[0]!.n).toBe(rows);
    } finally {
      await client.close();
      await db.query(`DELETE FROM task WHERE title LIKE 'history %'`);
    }
  });

  it('re-snapshots when the server pruned what it missed, keeping its unsent writes and dropping what the server deleted', async () => {
    const dataDir = path.join(scratch.dir, 'resnapshot');
    const [kept] = await task('kept by the client');
    const [deleted] = await task('deleted while away');
    let client = await createSyncClient({ url: url(), token, dataDir });
    await client.ready;
    await waitFor('both rows', async () => (await client.db.query(`SELECT 1 FROM task WHERE id = ANY($1)`, [[kept!.id, deleted!.id]])).rows.length === 2);

    await fixture.stopServer();
    await waitFor('offline', () => client.status === 'offline');
    await client.db.query(`UPDATE task SET title = 'edited offline' WHERE id = $1`, [kept!.id]);
    await client.db.query(`INSERT INTO task (workspace_id, project_id, title) VALUES ($1, $2, 'created offline')`, [seed.workspaces.shared, seed.projects.launch]);
    await client.close();

    // While the client is away: the server deletes a row, changes another, and prunes the history it would need.
    await db.query(`DELETE FROM task WHERE id = $1`, [deleted!.id]);
    const [external] = await task('created while away');
    await fixture.startServer();
    const newest = await waitFor('capture', async () => (await db.query<{ lsn: string }>(`SELECT max(commit_lsn)::text AS lsn FROM change_history HAVING bool_or(data->>'title' = 'created while away')`))[0]?.lsn);
    const connection = await db.pool.connect();
    try {
      await pruneHistory(connection, BigInt(newest));
    } finally {
      connection.release();
    }

    client = await createSyncClient({ url: url(), token, dataDir });
    const events = record(client);
    try {
      await client.ready;
      await client.flush();
      expect(events.map((event) => event.name)).toContain('bootstrap:start');
      const local = async (id: string) => (await client.db.query<{ title: string; deleted_at: string | null }>(`SELECT title, deleted_at FROM task WHERE id = $1`, [id])).rows[0];
      expect((await local(kept!.id))?.title).toBe('edited offline');
      expect(await local(deleted!.id)).toBeUndefined();
      expect((await local(external!.id))?.title).toBe('created while away');
      expect(await db.query(`SELECT title FROM task WHERE id = $1`, [kept!.id])).toEqual([{ title: 'edited offline' }]);
      expect(await db.query(`SELECT 1 FROM task WHERE title = 'created offline'`)).toHaveLength(1);
      expect((await client.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM walsync_outbox`)).rows[0]!.n).toBe(0);
      const position = (await client.db.query<{ value: string }>(`SELECT value FROM walsync_state WHERE key = 'position'`)).rows[0]!.value;
      expect(parsePosition(position)).toBeGreaterThanOrEqual(BigInt(newest));
    } finally {
      await client.close();
    }
  });

  it('reports a local database it cannot open, and leaves it as it was', async () => {
    const dataDir = path.join(scratch.dir, 'corrupt');
    const client = await createSyncClient({ url: url(), token, dataDir });
    await client.ready;
    await client.close();
    writeFileSync(path.join(dataDir, 'global/pg_control'), Buffer.alloc(8192, 7));
    const before = fingerprint(dataDir);
    await expect(createSyncClient({ url: url(), token, dataDir })).rejects.toMatchObject({ code: 'corrupt_database', message: expect.stringMatching(/cannot be opened.*left untouched/) });
    expect(fingerprint(dataDir)).toBe(before);
    // The lock was released: once the directory is repaired (here: moved aside), the client opens again.
  });

  it('re-snapshots from a damaged stored position, keeping the outbox', async () => {
    const dataDir = path.join(scratch.dir, 'bad-position');
    let client = await createSyncClient({ url: url(), token, dataDir });
    await client.ready;
    await fixture.stopServer();
    await client.db.query(`INSERT INTO task (workspace_id, project_id, title) VALUES ($1, $2, 'unsent before the damage')`, [seed.workspaces.shared, seed.projects.launch]);
    await client.db.query(`UPDATE walsync_state SET value = 'garbage' WHERE key = 'position'`);
    await client.close();
    await fixture.startServer();

    client = await createSyncClient({ url: url(), token, dataDir });
    const events = record(client);
    try {
      await client.ready;
      await client.flush();
      const error = events.find((event) => event.name === 'error')?.args[0] as { code?: string; message: string };
      expect(error).toMatchObject({ code: 'corrupt_database', message: expect.stringMatching(/not a position; re-snapshotting/) });
      expect(events.map((event) => event.name)).toContain('bootstrap:complete');
      expect(await db.query(`SELECT 1 FROM task WHERE title = 'unsent before the damage'`)).toHaveLength(1);
      const serverTasks = await db.query(`SELECT id, title FROM task WHERE workspace_id = $1 AND deleted_at IS NULL ORDER BY id`, [seed.workspaces.shared]);
      expect((await client.db.query(`SELECT id, title FROM task WHERE deleted_at IS NULL ORDER BY id`)).rows).toEqual(serverTasks);
    } finally {
      await client.close();
    }
  });
});
