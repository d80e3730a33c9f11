import { describeSyncedTables, migrations, runServerMigrations } from '@walsync/db/server';
import { type TestDatabase, postgresTargets, startDatabase, startServer } from '@walsync/test-support';
import type { QueryRunner } from 'typeorm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/** A migration that adds a synced table but forgets REPLICA IDENTITY FULL (what a hand-written one may do). */
class AddLabel1900000000002 {
  name = 'AddLabel1900000000002';
  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`CREATE TABLE "label" ("id" uuid PRIMARY KEY DEFAULT gen_random_uuid(), "workspace_id" uuid NOT NULL, "name" text NOT NULL)`);
  }
  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP TABLE "label"`);
  }
}

/**
 * A synced table without REPLICA IDENTITY FULL loses deletes: a hard DELETE reaches the WAL with its
 * key only, so the change has no scope and no client would ever get it. Neither a migration run nor
 * a server start lets that happen silently.
 */
describe.each(postgresTargets())('tables capture cannot serve ($name)', (target) => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await startDatabase(target);
  });
  afterAll(async () => {
    await db?.dispose();
  });

  it('a migration run that leaves a synced table without REPLICA IDENTITY FULL is refused whole, naming the fix', async () => {
    const tables = await describeSyncedTables();
    const label = { name: 'label', primaryKey: ['id'], scope: 'workspace_id', columns: [] };
    const run = runServerMigrations(db.url, [...migrations, AddLabel1900000000002] as never, { capture: [...tables, label] });
    await expect(run).rejects.toMatchObject({ code: 'CAPTURE_NOT_READY', message: expect.stringContaining('ALTER TABLE "label" REPLICA IDENTITY FULL') });
    // Nothing of it was applied.
    expect(await db.query(`SELECT to_regclass('label') AS name`)).toEqual([{ name: null }]);
    expect(await db.query(`SELECT 1 FROM migrations WHERE name = 'AddLabel1900000000002'`)).toEqual([]);
    expect(await db.query(`SELECT 1 FROM client_migration WHERE "migrationName" = 'AddLabel1900000000002'`)).toEqual([]);
  });

  it('a server refuses to start on a synced table that lost it', async () => {
    await db.query(`ALTER TABLE comment REPLICA IDENTITY DEFAULT`);
    try {
      await expect(startServer(db.url)).rejects.toThrow(/"comment" REPLICA IDENTITY FULL/);
    } finally {
      await db.query(`ALTER TABLE comment REPLICA IDENTITY FULL`);
    }
    const server = await startServer(db.url);
    await server.stop();
  });
});
