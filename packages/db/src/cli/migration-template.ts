import type { MigrationQuery } from '../schema/migration';

/** One `await queryRunner.query(...)` line, as TypeORM's generator writes it. */
function queryLine(query: MigrationQuery): string {
  const sql = query.sql.replace(/\\/g, '\\\\').replace(/`/g, '\\`').replace(/\$\{/g, '\\${');
  const params = query.params.length > 0 ? `, ${JSON.stringify(query.params)}` : '';
  return `        await queryRunner.query(\`${sql}\`${params});`;
}

/**
 * The source of a migration class in TypeORM's layout. Only `queryRunner.query()` is used, so
 * the SQL can be extracted for clients.
 */
export function migrationTemplate(className: string, up: MigrationQuery[], down: MigrationQuery[]): string {
  return `import { MigrationInterface, QueryRunner } from "typeorm";

export class ${className} implements MigrationInterface {
    name = '${className}'

    public async up(queryRunner: QueryRunner): Promise<void> {
${up.map(queryLine).join('\n')}
    }

    public async down(queryRunner: QueryRunner): Promise<void> {
${down.map(queryLine).join('\n')}
    }

}
`;
}
