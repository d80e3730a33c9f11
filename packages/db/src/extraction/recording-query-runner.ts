import type { QueryRunner } from 'typeorm';
import { WalsyncError } from '../errors';
import type { MigrationQuery } from '../schema/migration';

/**
 * A stand-in for TypeORM's QueryRunner that needs no database: it records every
 * `query(sql, params)` call and refuses everything else, naming the migration and the call.
 * (`queryRunner.enableSqlMemory()` cannot be used: it does not capture `query()`.)
 */
export function recordingQueryRunner(migrationName: string, recorded: MigrationQuery[]): QueryRunner {
  const query = async (sql: unknown, params?: unknown) => {
    if (typeof sql !== 'string' || sql.trim() === '') {
      throw new WalsyncError(
        'MIGRATION_EXTRACTION',
        `Migration ${migrationName} called queryRunner.query() with ${typeof sql === 'string' ? 'empty SQL' : `a ${typeof sql} instead of SQL text`}.`,
        { migration: migrationName },
      );
    }
    if (params !== undefined && !Array.isArray(params)) {
      throw new WalsyncError(
        'MIGRATION_EXTRACTION',
        `Migration ${migrationName} called queryRunner.query() with parameters that are not an array.`,
        { migration: migrationName },
      );
    }
    recorded.push({ sql, params: params ?? [] });
    return [];
  };
  return new Proxy({} as QueryRunner, {
    get(_target, property) {
      if (property === 'query') return query;
      // Awaiting or inspecting the runner itself must not count as a call.
      if (property === 'then' || typeof property === 'symbol') return undefined;
      throw new WalsyncError(
        'MIGRATION_EXTRACTION',
        `Migration ${migrationName} uses queryRunner.${String(property)}, but only queryRunner.query() can be extracted to SQL for clients. ` +
          `Rewrite that step as queryRunner.query("...") with plain SQL.`,
        { migration: migrationName, call: String(property) },
      );
    },
  });
}
