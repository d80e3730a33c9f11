import type { PGlite } from '@electric-sql/pglite';
import { parseHlc } from '@walsync/db/browser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ReplicaStore } from '@walsync/web';
import { localReplica } from './support/local-replica';

describe('capturing local writes in PGlite', () => {
  let db: PGlite;
  let store: ReplicaStore;
  let workspace: string;
  let project: string;
  const outbox = async () => (await db.query<any>(`SELECT table_name, op, pk, data, hlc FROM walsync_outbox ORDER BY seq`)).rows;

  beforeAll(async () => {
    ({ db, store, workspace, project } = await localReplica());
  });
  afterAll(async () => {
    await db.close();
  });

  it('does not capture remote applies: their inserts, updates and deletes (a delete removes the row, no tombstone)', async () => {
    const triggerCalls = await db.transaction(async (tx) => {
      await tx.exec(`SET LOCAL walsync.applying = 'on'; SET LOCAL track_functions = 'all'`);
      const { rows } = await tx.query<{ id: string }>(`INSERT INTO task (workspace_id, project_id, title) VALUES ($1, $2, 'remote') RETURNING id`, [workspace, project]);
      await tx.query(`INSERT INTO task (id, workspace_id, project_id, title) VALUES ($1, $2, $3, 'upserted') ON CONFLICT (id) DO UPDATE SET title = EXCLUDED.title`, [rows[0]!.id, workspace, project]);
      await tx.query(`DELETE FROM task WHERE id = $1`, [rows[0]!.id]);
      return (await tx.query(`SELECT funcname, calls FROM pg_stat_xact_user_functions WHERE funcname IN ('walsync_local_write', 'walsync_tombstone')`)).rows;
    });
    expect(await outbox()).toEqual([]);
    // The triggers' WHEN skips an apply before PL/pgSQL is entered: an upsert would call a BEFORE trigger twice a row.
    expect(triggerCalls).toEqual([]);
    expect((await db.query(`SELECT 1 FROM task WHERE title IN ('remote', 'upserted')`)).rows).toEqual([]);
  });

  it('captures inserts, changed columns of updates, and local deletes as tombstones, in the same transaction, stamped with increasing HLCs', async () => {
    const { rows } = await db.query<{ id: string }>(`INSERT INTO task (workspace_id, project_id, title) VALUES ($1, $2, 'local') RETURNING id`, [workspace, project]);
    const id = rows[0]!.id;
    await db.query(`UPDATE task SET title = 'renamed', status = 'doing' WHERE id = $1`, [id]);
    await db.query(`UPDATE task SET title = 'renamed' WHERE id = $1`, [id]);
    await db.query(`DELETE FROM task WHERE id = $1`, [id]);
    await db.transaction(async (tx) => {
      await tx.query(`INSERT INTO task (workspace_id, project_id, title) VALUES ($1, $2, 'rolled back')`, [workspace, project]);
      await tx.rollback();
    });

    const captured = await outbox();
    expect(captured.map(({ op, data }) => [op, data])).toEqual([
      ['insert', expect.objectContaining({ id, title: 'local', status: 'todo', workspace_id: workspace })],
      ['update', { title: 'renamed', status: 'doing' }],
      ['delete', {}],
    ]);
    expect(captured.every((change) => change.pk.id === id && change.table_name === 'task')).toBe(true);
    // An insert is captured whole; what is sent holds only the columns this build writes.
    const sent = await store.unsent(10);
    expect(sent.map(({ op, data }) => [op, data])).toEqual([
      ['insert', expect.objectContaining({ id, title: 'local', status: 'todo', workspace_id: workspace })],
      ['update', { title: 'renamed', status: 'doing' }],
      ['delete', {}],
    ]);
    for (const column of ['version', 'hlc', 'origin_client_id', 'column_hlcs', 'deleted_at', 'created_at', 'updated_at']) expect(sent[0]!.data).not.toHaveProperty(column);
    const stamps = captured.map((change) => change.hlc);
    expect([...stamps].sort()).toEqual(stamps);
    expect(new Set(stamps).size).toBe(3);
    expect(stamps.every((stamp) => parseHlc(stamp)?.node === 'client-a')).toBe(true);
    const local = (await db.query<any>(`SELECT deleted_at, hlc, origin_client_id, version FROM task WHERE id = $1`, [id])).rows[0];
    expect(local).toMatchObject({ hlc: stamps[2], origin_client_id: 'client-a', version: 3 });
    expect(local.deleted_at).not.toBeNull();
  });

  it('moves the local clock past timestamps seen from elsewhere', async () => {
    const future = `${String(Date.now() + 3_600_000).padStart(15, '0')}:000007:client-b`;
    await db.query(`SELECT walsync_observe_hlc($1)`, [future]);
    await db.query(`INSERT INTO task (workspace_id, project_id, title) VALUES ($1, $2, 'after')`, [workspace, project]);
    const [last] = (await db.query<{ hlc: string }>(`SELECT hlc FROM walsync_outbox ORDER BY seq DESC LIMIT 1`)).rows;
    expect(last!.hlc > future.slice(0, 22)).toBe(true);
    expect(parseHlc(last!.hlc)).toMatchObject({ node: 'client-a', counter: 8 });
    // An older timestamp, or something that is not one, never moves it back.
    const clock = async () => (await db.query<{ value: string }>(`SELECT value FROM walsync_state WHERE key = 'hlc'`)).rows[0]!.value;
    const before = await clock();
    for (const seen of [`${String(Date.now() - 3_600_000).padStart(15, '0')}:000009:client-c`, 'not a timestamp', null]) await db.query(`SELECT walsync_observe_hlc($1)`, [seen]);
    expect(await clock()).toBe(before);
  });
});
