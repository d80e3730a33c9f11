/** Runs SQL and returns rows: a pg client or a PGlite instance. */
export type RunQuery = (sql: string) => Promise<Record<string, unknown>[]>;

/** Tables that exist on one side only by design: TypeORM's bookkeeping and the recorded schema (walsync_schema) on the server. */
const SERVER_ONLY = ['migrations', 'walsync_schema'];

/**
 * The public schema as the catalogs describe it: tables, columns (type, nullability, default),
 * constraints, indexes, enums and replica identity. Two databases with equal snapshots have the
 * same schema.
 */
export async function schemaSnapshot(run: RunQuery) {
  const excluded = SERVER_ONLY.map((name) => `'${name}'`).join(', ');
  return {
    tables: await run(
      `SELECT c.relname AS table, c.relreplident AS replica_identity FROM pg_class c
        WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r' AND c.relname NOT IN (${excluded}) ORDER BY 1`,
    ),
    columns: await run(
      `SELECT table_name, column_name, ordinal_position, data_type, udt_name, is_nullable, column_default,
              character_maximum_length, numeric_precision, is_identity, is_generated
         FROM information_schema.columns WHERE table_schema = 'public' AND table_name NOT IN (${excluded})
        ORDER BY table_name, ordinal_position`,
    ),
    // Postgres 18 also lists NOT NULL as constraints (contype 'n'); older servers do not. Nullability
    // is compared through information_schema.columns instead.
    constraints: await run(
      `SELECT conrelid::regclass::text AS table, conname, contype, condeferrable, condeferred, pg_get_constraintdef(oid) AS definition
         FROM pg_constraint WHERE connamespace = 'public'::regnamespace AND contype <> 'n' AND conrelid::regclass::text NOT IN (${excluded})
        ORDER BY 1, 2`,
    ),
    indexes: await run(
      `SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename NOT IN (${excluded}) ORDER BY 1, 2`,
    ),
    enums: await run(
      `SELECT t.typname, e.enumlabel, e.enumsortorder FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid
        WHERE t.typnamespace = 'public'::regnamespace ORDER BY 1, 3`,
    ),
  };
}
