import { MigrationInterface, QueryRunner } from "typeorm";

export class ColumnClocks1796195495455 implements MigrationInterface {
    name = 'ColumnClocks1796195495455'

    public async up(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`ALTER TABLE "workspace" ADD "column_hlcs" jsonb DEFAULT '{}'`);
        await queryRunner.query(`ALTER TABLE "project" ADD "column_hlcs" jsonb DEFAULT '{}'`);
        await queryRunner.query(`ALTER TABLE "task" ADD "column_hlcs" jsonb DEFAULT '{}'`);
        await queryRunner.query(`ALTER TABLE "comment" ADD "column_hlcs" jsonb DEFAULT '{}'`);
        await queryRunner.query(`ALTER TABLE "workspace_member" ADD "column_hlcs" jsonb DEFAULT '{}'`);
    }

    public async down(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`ALTER TABLE "workspace_member" DROP COLUMN "column_hlcs"`);
        await queryRunner.query(`ALTER TABLE "comment" DROP COLUMN "column_hlcs"`);
        await queryRunner.query(`ALTER TABLE "task" DROP COLUMN "column_hlcs"`);
        await queryRunner.query(`ALTER TABLE "project" DROP COLUMN "column_hlcs"`);
        await queryRunner.query(`ALTER TABLE "workspace" DROP COLUMN "column_hlcs"`);
    }

}
