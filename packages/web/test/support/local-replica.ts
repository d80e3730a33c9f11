import { PGlite } from '@electric-sql/pglite';
import { migrations, syncedTables } from '@walsync/db/browser';
import { ReplicaStore } from '@walsync/web';

/**
 * A migrated in-memory PGlite with the client's local schema (through the public ReplicaStore),
 * client id `client-a`, and one workspace and project written as remote applies (not captured):
 * the ground for tests of the client's SQL without a server.
 */
export async function localReplica(): Promise<{ db: PGlite; store: ReplicaStore; workspace: string; project: string }> {
  const db = await PGlite.create();
  const store = new ReplicaStore(db, syncedTables);
  await store.open('client-a');
  await store.migrate(migrations);
  await db.exec(`SET walsync.applying = 'on'`);
  const workspace = (await db.query<{ id: string }>(`INSERT INTO workspace (name) VALUES ('w') RETURNING id`)).rows[0]!.id;
  const project = (await db.query<{ id: string }>(`INSERT INTO project (workspace_id, name) VALUES ($1, 'p') RETURNING id`, [workspace])).rows[0]!.id;
  await db.exec(`RESET walsync.applying`);
  return { db, store, workspace, project };
}
