import { MigrationInterface, QueryRunner } from "typeorm";

/**
 * A comment written while its task moves to another project took the task's old project: under READ
 * COMMITTED the comment's trigger read the task before the move committed, and the move's trigger
 * did not see the uncommitted comment. The comment was then in a project its task had left, sent to
 * the old project's subscribers without its task. Now the comment's trigger locks the task row
 * (FOR SHARE waits for a move in progress and reads the moved row; a move waits for the comment's
 * transaction, and its trigger then sees the comment), and comments left behind are put right.
 */
export class CommentProjectSerialized1796454351763 implements MigrationInterface {
    name = 'CommentProjectSerialized1796454351763'

    public async up(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`CREATE OR REPLACE FUNCTION "comment_project_of_task"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.project_id := coalesce((SELECT project_id FROM task WHERE id = NEW.task_id FOR SHARE), NEW.project_id);
  RETURN NEW;
END $$`);
        await queryRunner.query(`UPDATE "comment" c SET "project_id" = t."project_id" FROM "task" t WHERE t."id" = c."task_id" AND c."project_id" IS DISTINCT FROM t."project_id"`);
    }

    public async down(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`CREATE OR REPLACE FUNCTION "comment_project_of_task"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.project_id := coalesce((SELECT project_id FROM task WHERE id = NEW.task_id), NEW.project_id);
  RETURN NEW;
END $$`);
    }

}
