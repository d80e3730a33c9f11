/**
 * The `client_migration` table, identical on the server (the catalog clients are served from)
 * and in every client (what that client applied). It is created outside the migrations because
 * it must exist before the first migration can be recorded.
 */
export const CREATE_CLIENT_MIGRATION_TABLE = `CREATE TABLE IF NOT EXISTS client_migration (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  "migrationName" text NOT NULL UNIQUE,
  "timestamp" bigint NOT NULL,
  "upQueries" jsonb NOT NULL,
  "downQueries" jsonb NOT NULL,
  checksum text NOT NULL,
  "clientApplied" boolean NOT NULL DEFAULT false,
  "appliedAt" timestamptz,
  error text,
  "retryCount" integer NOT NULL DEFAULT 0
)`;
