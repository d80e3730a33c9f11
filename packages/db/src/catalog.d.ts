/** The catalog `yarn build` extracts from the TypeORM migrations and entities (dist/catalog.json), inlined into the browser build. */
declare module 'walsync:catalog' {
  const catalog: {
    schemaVersion: string;
    migrations: unknown[];
    tables: import('./schema/tables').SyncedTable[];
  };
  export default catalog;
}
