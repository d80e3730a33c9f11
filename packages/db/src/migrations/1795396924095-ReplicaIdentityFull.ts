import { MigrationInterface, QueryRunner } from "typeorm";

export class ReplicaIdentityFull1795396924095 implements MigrationInterface {
    name = 'ReplicaIdentityFull1795396924095'

    /** Logical replication sends whole old rows for synced tables, so history keeps old_data and scope on every update and delete. */
    public async up(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`ALTER TABLE "workspace" REPLICA IDENTITY FULL`);
        await queryRunner.query(`ALTER TABLE "workspace_member" REPLICA IDENTITY FULL`);
        await queryRunner.query(`ALTER TABLE "project" REPLICA IDENTITY FULL`);
        await queryRunner.query(`ALTER TABLE "task" REPLICA IDENTITY FULL`);
        await queryRunner.query(`ALTER TABLE "comment" REPLICA IDENTITY FULL`);
    }

    public async down(queryRunner: QueryRunner): Promise<void> {
        await queryRunner.query(`ALTER TABLE "comment" REPLICA IDENTITY DEFAULT`);
        await queryRunner.query(`ALTER TABLE "task" REPLICA IDENTITY DEFAULT`);
        await queryRunner.query(`ALTER TABLE "project" REPLICA IDENTITY DEFAULT`);
        await queryRunner.query(`ALTER TABLE "workspace_member" REPLICA IDENTITY DEFAULT`);
        await queryRunner.query(`ALTER TABLE "workspace" REPLICA IDENTITY DEFAULT`);
    }

}
