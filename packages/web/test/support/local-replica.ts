import { PGlite } from '@electric-sql/pglite';
import { createMigrationAPI, syncedTables } from '@walsync/db/browser';
import { expect } from 'vitest';
import { installLocalSchema } from '../../src/local-schema';

/**
 * A migrated in-memory PGlite with the client's local schema, client id `client-a`, and one
 * workspace and project written as remote applies (not captured): the ground for tests of the
 * client's SQL without a server.
 */
export async function localReplica(): Promise<{ db: PGlite; workspace: string; project: string }> {
  const db = await PGlite.create();
  expect((await createMigrationAPI(db).migrateToLatest()).error).toBeUndefined();
  await installLocalSchema(db, syncedTables);
  await db.query(`INSERT INTO walsync_state VALUES ('client_id', 'client-a')`);
  await db.exec(`SET walsync.applying = 'on'`);
  const workspace = (await db.query<{ id: string }>(`INSERT INTO workspace (name) VALUES ('w') RETURNING id`)).rows[0]!.id;
  const project = (await db.query<{ id: string }>(`INSERT INTO project (workspace_id, name) VALUES ($1, 'p') RETURNING id`, [workspace])).rows[0]!.id;
  await db.exec(`RESET walsync.applying`);
  return { db, workspace, project };
}
