import type { PGliteInterface, Transaction } from '@electric-sql/pglite';
import { WalsyncError, messageOf } from '../errors';
import { CREATE_CLIENT_MIGRATION_TABLE } from '../schema/client-migration';
import { type ExtractedMigration, type MigrationQuery } from '../schema/migration';
import { validateMigrationList } from './validate-migrations';

export type MigrationState = 'applied' | 'pending' | 'failed' | 'drift' | 'unknown';

/** Where one migration stands in this database. */
export interface MigrationStatus {
  name: string;
  timestamp: number;
  state: MigrationState;
  /** The checksum this client applied, when it differs from the known one (`drift`). */
  appliedChecksum: string | null;
  appliedAt: Date | null;
  error: string | null;
  retryCount: number;
}

/** Kysely's convention: a batch answers per item instead of throwing half-way. */
export interface MigrationResult {
  migrationName: string;
  direction: 'Up' | 'Down';
  status: 'Success' | 'Error' | 'NotExecuted';
  error?: string;
}

export interface MigrationResultSet {
  /** Set when the batch stopped early; the results say which migration and why. */
  error?: WalsyncError;
  results: MigrationResult[];
}

export interface MigrationAPI {
  getPendingMigrations(): Promise<ExtractedMigration[]>;
  applyMigration(name: string): Promise<MigrationResultSet>;
  getMigrationStatus(): Promise<MigrationStatus[]>;
  rollbackMigration(name: string): Promise<MigrationResultSet>;
  migrateToLatest(): Promise<MigrationResultSet>;
}

interface AppliedRow {
  migrationName: string;
  timestamp: string | number;
  checksum: string;
  clientApplied: boolean;
  appliedAt: Date | null;
  error: string | null;
  retryCount: number;
}

type Queryable = Pick<PGliteInterface, 'query' | 'exec'> | Transaction;

const SELECT_ROWS = `SELECT "migrationName", "timestamp", checksum, "clientApplied", "appliedAt", error, "retryCount"
  FROM client_migration ORDER BY "timestamp"`;

/** Operations on one database run one at a time, whichever API object issued them. */
const queues = new WeakMap<object, Promise<unknown>>();
function serialized<T>(db: object, operation: () => Promise<T>): Promise<T> {
  const previous = queues.get(db) ?? Promise.resolve();
  const next = previous.then(operation, operation);
  queues.set(db, next.catch(() => undefined));
  return next;
}

async function run(db: Queryable, query: MigrationQuery): Promise<void> {
  // Without parameters, use the simple protocol so that a hand-written query() holding several
  // statements runs as it does on the server.
  if (query.params.length === 0) await db.exec(query.sql);
  else await db.query(query.sql, query.params);
}

async function readRows(db: Queryable): Promise<AppliedRow[]> {
  try {
    return (await db.query<AppliedRow>(SELECT_ROWS)).rows;
  } catch (error) {
    if ((error as { code?: string }).code !== '42P01') throw error;
    await db.exec(CREATE_CLIENT_MIGRATION_TABLE);
    return [];
  }
}

/**
 * The migrations this database applied, in order, with their SQL: what a client merges with the
 * list a server offers. Empty before the first migration.
 */
export async function appliedMigrations(db: Queryable): Promise<ExtractedMigration[]> {
  const result = await db
    .query<ExtractedMigration & { timestamp: string }>(
      `SELECT "migrationName" AS name, "timestamp", "upQueries" AS up, "downQueries" AS down, checksum FROM client_migration WHERE "clientApplied" ORDER BY "timestamp"`,
    )
    .catch((error: { code?: string }) => {
      if (error.code === '42P01') return { rows: [] };
      throw error;
    });
  return result.rows.map((row) => ({ ...row, timestamp: Number(row.timestamp) }));
}

/** The latest migration this database applied: its schema version (null before the first). */
export async function appliedSchemaVersion(db: Queryable): Promise<string | null> {
  const result = await db
    .query<{ name: string }>(`SELECT "migrationName" AS name FROM client_migration WHERE "clientApplied" ORDER BY "timestamp" DESC LIMIT 1`)
    .catch((error: { code?: string }) => {
      if (error.code === '42P01') return { rows: [] };
      throw error;
    });
  return result.rows[0]?.name ?? null;
}

/**
 * The MigrationAPI for one PGlite database. Each migration applies in one transaction together
 * with its `client_migration` row; a failure rolls back, records `error` and `retryCount`, and
 * leaves the schema as it was. A migration applied with another checksum is reported as drift
 * and never re-applied.
 *
 * @example
 *   const api = createMigrationAPI(pglite, { migrations });
 *   const { error } = await api.migrateToLatest();
 *   if (error) throw error;
 */
export function createMigrationAPI(db: PGliteInterface, options: { migrations: ExtractedMigration[] }): MigrationAPI {
  const migrations = validateMigrationList(options.migrations);
  const byName = new Map(migrations.map((migration) => [migration.name, migration]));

  const statusOf = (rows: AppliedRow[]): MigrationStatus[] => {
    const rowByName = new Map(rows.map((row) => [row.migrationName, row]));
    const known: MigrationStatus[] = migrations.map((migration) => {
      const row = rowByName.get(migration.name);
      const drifted = row?.clientApplied === true && row.checksum !== migration.checksum;
      return {
        name: migration.name,
        timestamp: migration.timestamp,
        state: drifted ? 'drift' : row?.clientApplied ? 'applied' : row?.error ? 'failed' : 'pending',
        appliedChecksum: drifted ? row.checksum : null,
        appliedAt: row?.appliedAt ? new Date(row.appliedAt) : null,
        error: row?.error ?? null,
        retryCount: row?.retryCount ?? 0,
      };
    });
    const unknown: MigrationStatus[] = rows
      .filter((row) => row.clientApplied && !byName.has(row.migrationName))
      .map((row) => ({
        name: row.migrationName,
        timestamp: Number(row.timestamp),
        state: 'unknown',
        appliedChecksum: row.checksum,
        appliedAt: row.appliedAt ? new Date(row.appliedAt) : null,
        error: row.error,
        retryCount: row.retryCount,
      }));
    return [...known, ...unknown];
  };

  const driftError = (statuses: MigrationStatus[]): WalsyncError | undefined => {
    const drifted = statuses.find((status) => status.state === 'drift');
    if (!drifted) return undefined;
    return new WalsyncError(
      'MIGRATION_DRIFT',
      `Migration ${drifted.name} was applied to this database with checksum ${drifted.appliedChecksum}, ` +
        `but its SQL now has checksum ${byName.get(drifted.name)!.checksum}. It will not be re-applied; ` +
        `a published migration must never be edited — add a new migration instead.`,
      { migration: drifted.name },
    );
  };

  /** Applies one migration that the caller found pending; answers NotExecuted if another call got there first. */
  const applyOne = async (migration: ExtractedMigration): Promise<MigrationResult> => {
    const result = { migrationName: migration.name, direction: 'Up' as const };
    try {
      const applied = await db.transaction(async (tx) => {
        const current = await tx.query<{ clientApplied: boolean }>(
          `SELECT "clientApplied" FROM client_migration WHERE "migrationName" = $1 FOR UPDATE`,
          [migration.name],
        );
        if (current.rows[0]?.clientApplied) return false;
        for (const query of migration.up) await run(tx, query);
        await tx.query(
          `INSERT INTO client_migration ("migrationName", "timestamp", "upQueries", "downQueries", checksum, "clientApplied", "appliedAt", error)
           VALUES ($1, $2, $3, $4, $5, true, now(), NULL)
           ON CONFLICT ("migrationName") DO UPDATE SET "upQueries" = EXCLUDED."upQueries", "downQueries" = EXCLUDED."downQueries",
             checksum = EXCLUDED.checksum, "clientApplied" = true, "appliedAt" = now(), error = NULL`,
          [migration.name, migration.timestamp, JSON.stringify(migration.up), JSON.stringify(migration.down), migration.checksum],
        );
        return true;
      });
      return { ...result, status: applied ? 'Success' : 'NotExecuted' };
    } catch (error) {
      const message = messageOf(error);
      await db.query(
        `INSERT INTO client_migration ("migrationName", "timestamp", "upQueries", "downQueries", checksum, "clientApplied", error, "retryCount")
         VALUES ($1, $2, $3, $4, $5, false, $6, 1)
         ON CONFLICT ("migrationName") DO UPDATE SET error = EXCLUDED.error, "retryCount" = client_migration."retryCount" + 1`,
        [migration.name, migration.timestamp, JSON.stringify(migration.up), JSON.stringify(migration.down), migration.checksum, message],
      );
      return { ...result, status: 'Error', error: message };
    }
  };

  /** Applies `targets` in order, stopping at the first failure; the rest are NotExecuted. */
  const applyInOrder = async (targets: ExtractedMigration[]): Promise<MigrationResultSet> => {
    const results: MigrationResult[] = [];
    for (const migration of targets) {
      if (results.some((result) => result.status === 'Error')) {
        results.push({ migrationName: migration.name, direction: 'Up', status: 'NotExecuted' });
        continue;
      }
      results.push(await applyOne(migration));
    }
    const failed = results.find((result) => result.status === 'Error');
    if (!failed) return { results };
    return {
      results,
      error: new WalsyncError('MIGRATION_FAILED', `Migration ${failed.migrationName} failed and was rolled back: ${failed.error}`, {
        migration: failed.migrationName,
      }),
    };
  };

  const pendingIn = (statuses: MigrationStatus[]) =>
    migrations.filter((migration) => statuses.find((status) => status.name === migration.name)?.state !== 'applied');

  const api: MigrationAPI = {
    async getMigrationStatus() {
      return statusOf(await readRows(db));
    },

    async getPendingMigrations() {
      return pendingIn(statusOf(await readRows(db)));
    },

    migrateToLatest() {
      return serialized(db, async () => {
        const statuses = statusOf(await readRows(db));
        const drift = driftError(statuses);
        if (drift) return { error: drift, results: [] };
        return applyInOrder(pendingIn(statuses));
      });
    },

    applyMigration(name) {
      return serialized(db, async () => {
        const migration = byName.get(name);
        if (!migration) {
          return { error: unknownMigration(name, migrations), results: [] };
        }
        const statuses = statusOf(await readRows(db));
        const drift = driftError(statuses);
        if (drift) return { error: drift, results: [] };
        const earlierPending = pendingIn(statuses).filter((pending) => pending.timestamp < migration.timestamp);
        if (earlierPending.length > 0) {
          const error = new WalsyncError(
            'MIGRATION_ORDER',
            `Migration ${name} cannot be applied before ${earlierPending[0]!.name}; apply migrations in order (or call migrateToLatest()).`,
            { migration: name, pending: earlierPending[0]!.name },
          );
          return { error, results: [{ migrationName: name, direction: 'Up', status: 'NotExecuted' }] };
        }
        return applyInOrder([migration]);
      });
    },

    rollbackMigration(name) {
      return serialized(db, async () => {
        const migration = byName.get(name);
        if (!migration) return { error: unknownMigration(name, migrations), results: [] };
        const statuses = statusOf(await readRows(db));
        const applied = statuses.filter((status) => status.state === 'applied' || status.state === 'drift');
        const refuse = (message: string): MigrationResultSet => ({
          error: new WalsyncError('MIGRATION_ORDER', message, { migration: name }),
          results: [{ migrationName: name, direction: 'Down', status: 'NotExecuted' }],
        });
        if (!applied.some((status) => status.name === name)) {
          return refuse(`Migration ${name} is not applied to this database, so there is nothing to roll back.`);
        }
        if (applied.at(-1)!.name !== name) {
          return refuse(`Migration ${name} cannot be rolled back while a later migration (${applied.at(-1)!.name}) is applied; roll back the latest first.`);
        }
        const result = { migrationName: name, direction: 'Down' as const };
        try {
          await db.transaction(async (tx) => {
            for (const query of migration.down) await run(tx, query);
            await tx.query(
              `UPDATE client_migration SET "clientApplied" = false, "appliedAt" = NULL, error = NULL WHERE "migrationName" = $1`,
              [name],
            );
          });
          return { results: [{ ...result, status: 'Success' }] };
        } catch (error) {
          const wrapped = new WalsyncError('MIGRATION_FAILED', `Rolling back migration ${name} failed and was undone: ${messageOf(error)}`, {
            migration: name,
          }, error);
          return { error: wrapped, results: [{ ...result, status: 'Error', error: messageOf(error) }] };
        }
      });
    },
  };
  return api;
}

function unknownMigration(name: string, migrations: ExtractedMigration[]): WalsyncError {
  return new WalsyncError(
    'MIGRATION_UNKNOWN',
    `There is no migration named ${name}; known migrations: ${migrations.map((migration) => migration.name).join(', ') || 'none'}.`,
    { migration: name },
  );
}
