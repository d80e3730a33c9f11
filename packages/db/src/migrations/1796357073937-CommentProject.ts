import { MigrationInterface, QueryRunner } from "typeorm";

export class CommentProject1796357073937 implements MigrationInterface {
    name = 'CommentProject1796357073937'

    public async up(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`ALTER TABLE "comment" ADD "project_id" uuid`);
        await queryRunner.query(`CREATE INDEX "IDX_comment_project" ON "comment"  ("project_id") `);
        await queryRunner.query(`ALTER TABLE "comment" ADD CONSTRAINT "FK_adf18d7b5478c253880bbe5e0ce" FOREIGN KEY ("project_id") REFERENCES "project"("id") ON DELETE CASCADE ON UPDATE NO ACTION DEFERRABLE INITIALLY DEFERRED`);
        // A comment's project is its task's, kept by triggers on both sides (the server and every
        // replica run this SQL), so a project's subscription selects its comments by their own column.
        // A task that is not there yet (inserted later in the same transaction) leaves the value as
        // given; the task's insert then sets it.
        await queryRunner.query(`CREATE FUNCTION "comment_project_of_task"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.project_id := coalesce((SELECT project_id FROM task WHERE id = NEW.task_id), NEW.project_id);
  RETURN NEW;
END $$`);
        await queryRunner.query(`CREATE TRIGGER "comment_project_of_task" BEFORE INSERT OR UPDATE OF "task_id", "project_id" ON "comment" FOR EACH ROW EXECUTE FUNCTION "comment_project_of_task"()`);
        await queryRunner.query(`CREATE FUNCTION "task_project_to_comments"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE comment SET project_id = NEW.project_id WHERE task_id = NEW.id AND project_id IS DISTINCT FROM NEW.project_id;
  RETURN NULL;
END $$`);
        await queryRunner.query(`CREATE TRIGGER "task_project_to_comments_insert" AFTER INSERT ON "task" FOR EACH ROW EXECUTE FUNCTION "task_project_to_comments"()`);
        await queryRunner.query(`CREATE TRIGGER "task_project_to_comments" AFTER UPDATE OF "project_id" ON "task" FOR EACH ROW WHEN (OLD.project_id IS DISTINCT FROM NEW.project_id) EXECUTE FUNCTION "task_project_to_comments"()`);
        await queryRunner.query(`UPDATE "comment" c SET "project_id" = t."project_id" FROM "task" t WHERE t."id" = c."task_id" AND c."project_id" IS DISTINCT FROM t."project_id"`);
    }

    public async down(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`DROP TRIGGER "task_project_to_comments" ON "task"`);
        await queryRunner.query(`DROP TRIGGER "task_project_to_comments_insert" ON "task"`);
        await queryRunner.query(`DROP FUNCTION "task_project_to_comments"()`);
        await queryRunner.query(`DROP TRIGGER "comment_project_of_task" ON "comment"`);
        await queryRunner.query(`DROP FUNCTION "comment_project_of_task"()`);
        await queryRunner.query(`ALTER TABLE "comment" DROP CONSTRAINT "FK_adf18d7b5478c253880bbe5e0ce"`);
        await queryRunner.query(`DROP INDEX "public"."IDX_comment_project"`);
        await queryRunner.query(`ALTER TABLE "comment" DROP COLUMN "project_id"`);
    }

}
