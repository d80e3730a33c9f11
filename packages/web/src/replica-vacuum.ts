import type { PGlite } from '@electric-sql/pglite';
import { quoteIdent } from '@walsync/db/browser';

/** The replica was written and then left alone this long: its tables are looked at. */
const QUIET_MS = 1_000;
/** A replica written without pause (a trickle of local writes) is looked at this often all the same. */
const MAX_WAIT_MS = 5_000;
/** This many rows written since the last look (a burst of changes from the stream): looked at now. */
const LOOK_AFTER_ROWS = 1_000;
/** Postgres refuses VACUUM inside a transaction block: one an app opened by hand (`BEGIN`) is waited out. */
const IN_TRANSACTION = '25001';
/** A table dropped (a migration) between the look and its VACUUM: nothing left to do. */
const UNDEFINED_TABLE = '42P01';

/**
 * The replica's autovacuum. PGlite runs Postgres as a single backend, without autovacuum's
 * background workers, so nothing reclaimed the row versions that applied changes, local writes and
 * the outbox leave behind: 550 tasks updated 55,000 times by the stream grew from 0.14 MB to 45 MB
 * of heap, and a scan of the table took 9.6 ms instead of 0.2 (`yarn bench client`; 2.1 MB with this). Once the replica has been written and then
 * quiet for a second (at the latest five seconds after it was first written, or as soon as a
 * thousand rows were written), each table past Postgres' own autovacuum thresholds is vacuumed or
 * analyzed, by the replica's own settings
 * (`autovacuum_vacuum_threshold`, `…_scale_factor`, `autovacuum_analyze_threshold`, `…_scale_factor`).
 * It runs between the replica's other statements, never inside them (PGlite runs one at a time).
 *
 * @example
 *   const vacuum = new ReplicaVacuum(db, (error) => console.warn(error));
 *   vacuum.written(changes.length); // after each write; the tables are looked at once the replica is quiet
 *   await vacuum.close();
 */
export class ReplicaVacuum {
  private timer: ReturnType<typeof setTimeout> | undefined;
  /** When the first write since the last look came: the look waits for a quiet moment no longer than MAX_WAIT_MS past it. */
  private firstWrite: number | undefined;
  /** Rows written since the last look. */
  private rows = 0;
  private running: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(
    private readonly db: Pick<PGlite, 'query' | 'exec'>,
    private readonly onFailed: (error: Error) => void,
  ) {}

  /** `rows` rows of the replica were written: its tables are looked at once it is quiet, or now after a burst. */
  written(rows = 1): void {
    if (this.closed) return;
    const now = Date.now();
    this.firstWrite ??= now;
    this.rows += rows;
    const wait = this.rows >= LOOK_AFTER_ROWS ? 0 : Math.max(0, Math.min(QUIET_MS, this.firstWrite + MAX_WAIT_MS - now));
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.look(), wait);
  }

  /** Vacuums and analyzes each table past its thresholds now; resolves when done (what failed is reported, not thrown). */
  look(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.firstWrite = undefined;
    this.rows = 0;
    this.running = this.running.then(() => (this.closed ? undefined : this.upkeep()));
    return this.running;
  }

  /** No look starts after this; resolves once a running one is done (the database may close then). */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    await this.running;
  }

  private async upkeep(): Promise<void> {
    try {
      // The counts of the last second's writes may still wait in this backend: sent now (at this statement's end), read by the next.
      await this.db.query('SELECT pg_stat_force_next_flush()');
      const due = await this.db.query<{ schema: string; name: string; vacuum: boolean; analyze: boolean }>(
        `SELECT schemaname AS schema, relname AS name,
                n_dead_tup > current_setting('autovacuum_vacuum_threshold')::float8 + current_setting('autovacuum_vacuum_scale_factor')::float8 * n_live_tup AS vacuum,
                n_mod_since_analyze > current_setting('autovacuum_analyze_threshold')::float8 + current_setting('autovacuum_analyze_scale_factor')::float8 * n_live_tup AS analyze
           FROM pg_stat_user_tables
          WHERE n_dead_tup > current_setting('autovacuum_vacuum_threshold')::float8 + current_setting('autovacuum_vacuum_scale_factor')::float8 * n_live_tup
             OR n_mod_since_analyze > current_setting('autovacuum_analyze_threshold')::float8 + current_setting('autovacuum_analyze_scale_factor')::float8 * n_live_tup`,
      );
      for (const table of due.rows) {
        if (this.closed) return;
        const name = `${quoteIdent(table.schema)}.${quoteIdent(table.name)}`;
        await this.db.exec(table.vacuum ? `VACUUM ${table.analyze ? '(ANALYZE) ' : ''}${name}` : `ANALYZE ${name}`).catch((error: { code?: string }) => {
          if (error.code !== UNDEFINED_TABLE) throw error;
        });
      }
    } catch (error) {
      // A transaction the app holds open by hand: the next write looks again.
      if ((error as { code?: string }).code === IN_TRANSACTION) return;
      this.onFailed(error as Error);
    }
  }
}
