import { MigrationInterface, QueryRunner } from "typeorm";

export class TaskBoardIndex1796244348110 implements MigrationInterface {
    name = 'TaskBoardIndex1796244348110'

    public async up(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`CREATE INDEX "IDX_task_board" ON "task"  ("project_id", "status", "position", "created_at") WHERE "deleted_at" IS NULL`);
    }

    public async down(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`DROP INDEX "public"."IDX_task_board"`);
    }

}
