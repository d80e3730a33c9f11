import { DataSource } from 'typeorm';
import { entities } from '../entities';
import { syncOptionsOf } from '../schema/synced';
import type { SyncedTable } from '../schema/tables';

let described: Promise<SyncedTable[]> | undefined;

/** The synced tables, read from the entities' TypeORM metadata (no database needed), parents first. */
export function describeSyncedTables(): Promise<SyncedTable[]> {
  described ??= (async () => {
    const dataSource = new DataSource({ type: 'postgres', entities, uuidExtension: 'pgcrypto' });
    // Metadata is built on initialize(); we only want the metadata, not a connection.
    await (dataSource as unknown as { buildMetadatas(): Promise<void> }).buildMetadatas();
    // In the order of `entities`: parents before the tables that reference them.
    const ordered = [...dataSource.entityMetadatas].sort((a, b) => entities.indexOf(a.target as never) - entities.indexOf(b.target as never));
    return ordered.flatMap((metadata): SyncedTable[] => {
      const options = syncOptionsOf(metadata.target as Function);
      if (!options) return [];
      return [
        {
          name: metadata.tableName,
          primaryKey: metadata.primaryColumns.map((column) => column.databaseName),
          scope: options.scope,
          columns: metadata.columns.map((column) => ({
            name: column.databaseName,
            type: String(column.type),
            nullable: column.isNullable,
            hasDefault: column.default !== undefined || column.isGenerated || column.isVersion || column.isCreateDate || column.isUpdateDate,
            ...(column.enum ? { enumName: column.enumName, enumValues: column.enum.map(String) } : {}),
          })),
          references: metadata.foreignKeys.flatMap((key) => {
            const target = key.referencedEntityMetadata;
            const column = key.columns[0]!.databaseName;
            // The scope column's own key (to the workspace) is checked as membership.
            if (key.columns.length !== 1 || column === options.scope || !syncOptionsOf(target.target as Function)) return [];
            return [{ column, table: target.tableName }];
          }),
          members: options.members ?? [],
          ...(options.derived ? { derived: options.derived } : {}),
        },
      ];
    });
  })();
  return described;
}
