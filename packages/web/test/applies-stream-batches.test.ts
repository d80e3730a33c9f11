import type { PGlite } from '@electric-sql/pglite';
import { type StreamChange, syncedTables } from '@walsync/db/browser';
import { ReplicaStore } from '@walsync/web';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { localReplica } from './support/local-replica';

/**
 * A changes batch is applied as runs (consecutive changes of one kind to one table, one statement
 * each, one row per key): the result must be what applying its changes one by one would give.
 */
describe.each([
  { how: 'walsync_apply_changes', first: false },
  // A database handle's first batch goes as plain statements when no local write waits; each batch here is such a first one.
  { how: "a database handle's first batch", first: true },
])('applying a streamed batch in runs ($how)', ({ first }) => {
  let db: PGlite;
  let workspace: string;
  let project: string;
  let store: ReplicaStore;
  /**
   * How the batches of a test reach a replica: through its store, warmed by a first batch, or
   * (`first`) each through a store just made on the same database, as a reopened replica's.
   */
  const applier = async (db: PGlite, store: ReplicaStore) => {
    if (!first) await store.applyChanges([], '0/1');
    return (changes: StreamChange[], position: string) => (first ? new ReplicaStore(db, syncedTables) : store).applyChanges(changes, position);
  };
  let apply: Awaited<ReturnType<typeof applier>>;
  const taskRow = async (id: string) => (await db.query<any>(`SELECT title, version, deleted_at FROM task WHERE id = $1`, [id])).rows[0];
  const row = (id: string, title: string, version: number, extra: Record<string, unknown> = {}) => rowIn(workspace, project, id, title, version, extra);
  const upsert = (data: Record<string, unknown>): StreamChange => ({ table: 'task', op: 'update', data });

  beforeAll(async () => {
    ({ db, store, workspace, project } = await localReplica());
    apply = await applier(db, store);
  });
  afterAll(async () => {
    await db.close();
  });

  it('keeps the newest version of a row changed twice in one run, whatever the order', async () => {
    const [a, b] = [crypto.randomUUID(), crypto.randomUUID()];
    await apply([upsert(row(a, 'a2', 2)), upsert(row(b, 'b3', 3)), upsert(row(a, 'a3', 3)), upsert(row(b, 'b2', 2))], '0/10');
    expect(await taskRow(a)).toMatchObject({ title: 'a3', version: 3 });
    expect(await taskRow(b)).toMatchObject({ title: 'b3', version: 3 });
    // A later batch with an older version never rolls a row back.
    await apply([upsert(row(a, 'a1', 1))], '0/11');
    expect(await taskRow(a)).toMatchObject({ title: 'a3', version: 3 });
    expect((await db.query<any>(`SELECT value FROM walsync_state WHERE key = 'position'`)).rows[0].value).toBe('0/11');
  });

  it('keeps the batch order across runs: parents before children, a delete then an insert of the same row', async () => {
    const [parent, child, again] = [crypto.randomUUID(), crypto.randomUUID(), crypto.randomUUID()];
    await apply(
      [
        { table: 'project', op: 'insert', data: { id: parent, workspace_id: workspace, name: 'new', version: 1, created_at: '2026-01-01T00:00:00Z', updated_at: '2026-01-01T00:00:00Z' } },
        upsert(row(child, 'child', 1, { project_id: parent })),
        upsert(row(again, 'first', 1)),
        { table: 'task', op: 'delete', old: row(again, 'first', 1) },
        upsert(row(again, 'second', 2)),
      ],
      '0/20',
    );
    expect(await taskRow(child)).toMatchObject({ title: 'child' });
    expect(await taskRow(again)).toMatchObject({ title: 'second', version: 2 });
  });

  it('holds a streamed row back while the row has an unsent local write, and applies the newer one with the answer', async () => {
    const id = crypto.randomUUID();
    await apply([upsert(row(id, 'server', 1))], '0/30');
    await db.query(`UPDATE task SET title = 'local' WHERE id = $1`, [id]);
    const [change] = (await store.unsent(500)).filter((each) => each.pk.id === id);
    await apply([upsert(row(id, 'elsewhere 5', 5)), upsert(row(id, 'elsewhere 4', 4))], '0/31');
    expect(await taskRow(id)).toMatchObject({ title: 'local' });
    // The server answers the local write with an older row than the one it streamed meanwhile.
    await store.settle([change!], [{ changeId: change!.changeId, status: 'applied', lsn: '0/1', row: row(id, 'answer', 3) }]);
    expect(await taskRow(id)).toMatchObject({ title: 'elsewhere 5', version: 5 });
    expect((await db.query(`SELECT 1 FROM walsync_outbox WHERE change_id = $1`, [change!.changeId])).rows).toEqual([]);
  });

  it('applies a batch whole or not at all', async () => {
    const id = crypto.randomUUID();
    const broken = row(crypto.randomUUID(), 'orphan', 1, { project_id: crypto.randomUUID() });
    await expect(apply([upsert(row(id, 'lost', 1)), { table: 'comment', op: 'insert', data: { id: crypto.randomUUID() } }, upsert(broken)], '0/40')).rejects.toThrow();
    expect(await taskRow(id)).toBeUndefined();
    expect((await db.query<any>(`SELECT value FROM walsync_state WHERE key = 'position'`)).rows[0].value).toBe('0/31');
  });

  it('never removes a row the replica holds newer than the version it left at (moved out and back by this client, the answer first)', async () => {
    const id = crypto.randomUUID();
    await apply([upsert(row(id, 'server', 1))], '0/32');
    await db.query(`UPDATE task SET title = 'out and back' WHERE id = $1`, [id]);
    const [change] = (await store.unsent(500)).filter((each) => each.pk.id === id);
    await store.settle([change!], [{ changeId: change!.changeId, status: 'applied', lsn: '0/33', row: row(id, 'back', 3) }]);
    // The stream's removal of the row as it left (version 2), after the answer that brought it back at 3.
    await apply([{ table: 'task', op: 'delete', old: row(id, 'server', 2) }], '0/33');
    expect(await taskRow(id)).toMatchObject({ title: 'back', version: 3 });
    await apply([{ table: 'task', op: 'delete', old: row(id, 'back', 3) }], '0/34');
    expect(await taskRow(id)).toBeUndefined();
  });

  it('never rolls back, in the snapshot of a workspace added while live, a row an answer to its own write brought further', async () => {
    const [mine, other] = [crypto.randomUUID(), crypto.randomUUID()];
    await apply([upsert(row(mine, 'server', 1)), upsert(row(other, 'server', 1))], '0/40');
    await db.query(`UPDATE task SET title = 'mine' WHERE id = $1`, [mine]);
    const [change] = (await store.unsent(500)).filter((each) => each.pk.id === mine);
    // The snapshot was read before the write committed; the answer comes first.
    await store.settle([change!], [{ changeId: change!.changeId, status: 'applied', lsn: '0/41', row: row(mine, 'mine', 3) }]);
    await store.beginSnapshot(false, [workspace]);
    await store.snapshotPage('task', [row(mine, 'snapshot', 2), row(other, 'snapshot', 2)]);
    await store.endSnapshot('0/40');
    expect(await taskRow(mine)).toMatchObject({ title: 'mine', version: 3 });
    expect(await taskRow(other)).toMatchObject({ title: 'snapshot', version: 2 });
  });

  it('never hands the push writes that a workspace removal dropped while they were read', async () => {
    const own = crypto.randomUUID();
    await db.query(`INSERT INTO task (id, workspace_id, project_id, title) VALUES ($1, $2, $3, 'unsent')`, [own, workspace, project]);
    // The push reads the outbox; the server's scope_removed is handled before that read returns.
    const reading = store.unsent(500);
    const dropping = store.removeScope(workspace);
    expect((await reading).filter((change) => change.pk.id === own)).toEqual([]);
    expect((await dropping).map((write) => write.pk)).toContainEqual({ id: own });
    expect(await taskRow(own)).toBeUndefined();
  });

  it('lets a late answer to a write its workspace removal dropped take back nothing the regained workspace brought', async () => {
    // A replica of its own: the tests above removed their workspace.
    const { db, store, workspace, project } = await localReplica();
    const apply = await applier(db, store);
    const taskRow = async (id: string) => (await db.query<any>(`SELECT title, version FROM task WHERE id = $1`, [id])).rows[0];
    const row = (id: string, title: string, version: number) => rowIn(workspace, project, id, title, version);
    const [task, created] = [crypto.randomUUID(), crypto.randomUUID()];
    // The workspace's own rows, as a snapshot of it brings them back.
    const held = async (sql: string) => (await db.query<{ row: Record<string, unknown> }>(sql, [workspace])).rows.map((each) => each.row);
    const workspaceRows = await held(`SELECT to_jsonb(t) AS row FROM workspace t WHERE id = $1`);
    const projectRows = await held(`SELECT to_jsonb(t) AS row FROM project t WHERE workspace_id = $1`);
    await apply([upsert(row(task, 'server', 1))], '0/50');
    await db.query(`UPDATE task SET title = 'mine' WHERE id = $1`, [task]);
    await db.query(`INSERT INTO task (id, workspace_id, project_id, title) VALUES ($1, $2, $3, 'created')`, [created, workspace, project]);
    const sent = (await store.unsent(500)).filter((each) => each.pk.id === task || each.pk.id === created);
    // Another client's change is held back for the unsent write; then the user leaves the workspace
    // (the writes were pushed, the server applied them before the removal, the answers are late).
    await apply([upsert(row(task, 'elsewhere', 3))], '0/51');
    await store.removeScope(workspace);
    // Back in the workspace: its snapshot has the rows as the server has them now.
    await store.beginSnapshot(false, [workspace]);
    await store.snapshotPage('workspace', workspaceRows);
    await store.snapshotPage('project', projectRows);
    await store.snapshotPage('task', [row(task, 'newest', 4), row(created, 'renamed', 2)]);
    await store.endSnapshot('0/60');
    await store.settle(sent, sent.map((change) => ({ changeId: change.changeId, status: 'applied', lsn: '0/52', row: row(String(change.pk.id), 'answer', change.pk.id === task ? 2 : 1) })));
    expect(await taskRow(task)).toMatchObject({ title: 'newest', version: 4 });
    expect(await taskRow(created)).toMatchObject({ title: 'renamed', version: 2 });
    expect((await db.query(`SELECT 1 FROM walsync_deferred`)).rows).toEqual([]);
    // A late answer newer than what the replica holds still brings the row on.
    await store.settle(sent.slice(0, 1), [{ changeId: sent[0]!.changeId, status: 'applied', lsn: '0/61', row: row(String(sent[0]!.pk.id), 'later', 9) }]);
    expect(await taskRow(String(sent[0]!.pk.id))).toMatchObject({ title: 'later', version: 9 });
    // A dropped write the server applied after the regained workspace's snapshot was read: only its
    // answer brings it (the stream skips the client's own changes) — but not while the workspace is away.
    const late = { ...sent[1]!, changeId: crypto.randomUUID() };
    const lateRow = row(crypto.randomUUID(), 'applied late', 1);
    await store.removeScope(workspace);
    await store.settle([late], [{ changeId: late.changeId, status: 'applied', lsn: '0/62', row: lateRow }]);
    expect(await taskRow(String(lateRow.id))).toBeUndefined();
    await store.beginSnapshot(false, [workspace]);
    await store.snapshotPage('workspace', workspaceRows);
    await store.snapshotPage('project', projectRows);
    await store.endSnapshot('0/63');
    await store.settle([late], [{ changeId: late.changeId, status: 'applied', lsn: '0/62', row: lateRow }]);
    expect(await taskRow(String(lateRow.id))).toMatchObject({ title: 'applied late', version: 1 });
    await db.close();
  });

  it('keeps a row whose write was refused as outside the user\'s workspaces while the replica holds the workspace, until its scope_removed', async () => {
    const { db, store, workspace, project } = await localReplica();
    const taskRow = async (id: string) => (await db.query<any>(`SELECT title FROM task WHERE id = $1`, [id])).rows[0];
    const [held, away] = [crypto.randomUUID(), crypto.randomUUID()];
    await store.beginSnapshot(false, [workspace]);
    await store.snapshotPage('task', [rowIn(workspace, project, held, 'server', 1)]);
    await store.endSnapshot('0/70');
    await db.query(`UPDATE task SET title = 'mine' WHERE id = $1`, [held]);
    const refused = (await store.unsent(500)).filter((each) => each.pk.id === held);
    const forbidden = { status: 'error' as const, code: 'forbidden_scope' as const, message: 'not a member' };
    // The user left the workspace (and may be back) before the session said so: the replica's scope is behind.
    await store.settle(refused, [{ changeId: refused[0]!.changeId, ...forbidden }]);
    expect(await taskRow(held)).toEqual({ title: 'mine' });
    expect((await db.query(`SELECT 1 FROM walsync_outbox`)).rows).toEqual([]);
    // A row of a workspace the replica does not hold (written into it from outside) goes with its write.
    await db.query(`UPDATE walsync_state SET value = '[]' WHERE key = 'workspaces'`);
    await db.query(`INSERT INTO task (id, workspace_id, project_id, title) VALUES ($1, $2, $3, 'written outside')`, [away, workspace, project]);
    const outside = (await store.unsent(500)).filter((each) => each.pk.id === away);
    await store.settle(outside, [{ changeId: outside[0]!.changeId, ...forbidden }]);
    expect(await taskRow(away)).toBeUndefined();
    await db.close();
  });

  it('removes a row the stream moved out of the workspace while a refused write to it was on its way (chaos PG 18 seed 20)', async () => {
    const { db, store, workspace, project } = await localReplica();
    const apply = await applier(db, store);
    const taskRow = async (id: string) => (await db.query<any>(`SELECT title FROM task WHERE id = $1`, [id])).rows[0];
    const [moved, changed] = [crypto.randomUUID(), crypto.randomUUID()];
    await store.beginSnapshot(false, [workspace]);
    await store.snapshotPage('task', [rowIn(workspace, project, moved, 'server', 1), rowIn(workspace, project, changed, 'server', 1)]);
    await store.endSnapshot('0/80');
    await db.query(`UPDATE task SET title = 'mine' WHERE id = ANY($1::uuid[])`, [[moved, changed]]);
    const writes = await store.unsent(500);
    // Meanwhile SQL moved one row to a workspace the user is not in (the stream removes it), and
    // changed the other one; both wait behind the unsent writes.
    await apply(
      [
        { table: 'task', op: 'delete', old: rowIn(workspace, project, moved, 'server', 2) },
        upsert(rowIn(workspace, project, changed, 'changed elsewhere', 2)),
      ],
      '0/81',
    );
    expect(await taskRow(moved)).toEqual({ title: 'mine' });
    // The server refuses both writes (the rows' workspace, as the server reads them, is not the user's).
    const forbidden = { status: 'error' as const, code: 'forbidden_scope' as const, message: 'not a member' };
    await store.settle(writes, writes.map((write) => ({ changeId: write.changeId, ...forbidden })));
    // The stream's word stands: the moved row is gone, the changed one is the server's.
    expect(await taskRow(moved)).toBeUndefined();
    expect(await taskRow(changed)).toEqual({ title: 'changed elsewhere' });
    expect((await db.query(`SELECT 1 FROM walsync_deferred`)).rows).toEqual([]);
    await db.close();
  });
});

/** A task row as the server sends it. */
function rowIn(workspace: string, project: string, id: string, title: string, version: number, extra: Record<string, unknown> = {}) {
  return {
    id,
    workspace_id: workspace,
    project_id: project,
    title,
    status: 'todo',
    position: 0,
    labels: [],
    version,
    hlc: `${String(1_700_000_000_000 + version).padStart(15, '0')}:000000:server`,
    created_at: '2026-01-01T00:00:00Z',
    updated_at: '2026-01-01T00:00:00Z',
    ...extra,
  };
}
