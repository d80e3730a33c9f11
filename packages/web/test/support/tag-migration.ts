import type { SyncedTable } from '@walsync/db/browser';
import type { QueryRunner } from 'typeorm';

/** A migration a newer build brings: a new synced table, `tag`, scoped by workspace. */
export class AddTag1900000000001 {
  name = 'AddTag1900000000001';
  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`CREATE TABLE "tag" (
      "id" uuid NOT NULL DEFAULT gen_random_uuid(),
      "workspace_id" uuid NOT NULL,
      "name" text NOT NULL,
      "created_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(),
      "updated_at" TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(),
      "version" integer NOT NULL DEFAULT 1,
      "hlc" text,
      "origin_client_id" text,
      "deleted_at" TIMESTAMP WITH TIME ZONE,
      CONSTRAINT "PK_tag" PRIMARY KEY ("id"),
      CONSTRAINT "FK_tag_workspace" FOREIGN KEY ("workspace_id") REFERENCES "workspace"("id") DEFERRABLE INITIALLY DEFERRED)`);
    await queryRunner.query(`ALTER TABLE "tag" REPLICA IDENTITY FULL`);
  }
  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP TABLE "tag"`);
  }
}

const column = (name: string, type: string, nullable: boolean, hasDefault: boolean) => ({ name, type, nullable, hasDefault });
/** The newer build's description of `tag`, as describeSyncedTables would give it. */
export const TAG: SyncedTable = {
  name: 'tag',
  primaryKey: ['id'],
  scope: 'workspace_id',
  columns: [
    column('id', 'uuid', false, true),
    column('workspace_id', 'uuid', false, false),
    column('name', 'text', false, false),
    column('created_at', 'timestamp with time zone', false, true),
    column('updated_at', 'timestamp with time zone', false, true),
    column('version', 'integer', false, true),
    column('hlc', 'text', true, false),
    column('origin_client_id', 'text', true, false),
    column('deleted_at', 'timestamp with time zone', true, false),
  ],
};

