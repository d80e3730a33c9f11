import type { PGlite } from '@electric-sql/pglite';
import { quoteIdent } from '@walsync/db/browser';

/** The replica was written and then left alone this long: it is looked after. */
const QUIET_MS = 1_000;
/** A replica written without pause (a trickle of local writes) is looked after this often all the same. */
const MAX_WAIT_MS = 5_000;
/** This many rows written since the last look (a burst of changes from the stream): looked after now. */
const LOOK_AFTER_ROWS = 1_000;
/** WAL written since the last checkpoint past which the replica checkpoints (two 16 MB segments). */
const CHECKPOINT_AFTER_BYTES = 32 * 1024 * 1024;
/** Postgres refuses VACUUM inside a transaction block: one an app opened by hand (`BEGIN`) is waited out. */
const IN_TRANSACTION = '25001';
/** A table dropped (a migration) between the look and its VACUUM: nothing left to do. */
const UNDEFINED_TABLE = '42P01';

/**
 * The tables autovacuum would vacuum or analyze now: past `threshold + scale factor × live rows`,
 * each from the table's own storage parameter when it has one (`ALTER TABLE … SET
 * (autovacuum_vacuum_threshold = …)`), else from the replica's setting; none where `autovacuum` is
 * off, nor a table with `autovacuum_enabled = false`.
 */
const DUE_SQL = `
  SELECT * FROM (
    SELECT s.schemaname AS schema, s.relname AS name,
           s.n_dead_tup > coalesce(o.vacuum_threshold, current_setting('autovacuum_vacuum_threshold')::float8)
                          + coalesce(o.vacuum_scale, current_setting('autovacuum_vacuum_scale_factor')::float8) * s.n_live_tup AS vacuum,
           s.n_mod_since_analyze > coalesce(o.analyze_threshold, current_setting('autovacuum_analyze_threshold')::float8)
                                   + coalesce(o.analyze_scale, current_setting('autovacuum_analyze_scale_factor')::float8) * s.n_live_tup AS "analyze"
      FROM pg_stat_user_tables s
      JOIN pg_class c ON c.oid = s.relid
      CROSS JOIN LATERAL (
        SELECT bool_and(CASE WHEN option_name = 'autovacuum_enabled' THEN option_value::bool END) AS enabled,
               max(CASE WHEN option_name = 'autovacuum_vacuum_threshold' THEN option_value::float8 END) AS vacuum_threshold,
               max(CASE WHEN option_name = 'autovacuum_vacuum_scale_factor' THEN option_value::float8 END) AS vacuum_scale,
               max(CASE WHEN option_name = 'autovacuum_analyze_threshold' THEN option_value::float8 END) AS analyze_threshold,
               max(CASE WHEN option_name = 'autovacuum_analyze_scale_factor' THEN option_value::float8 END) AS analyze_scale
          FROM pg_options_to_table(c.reloptions)) o
     WHERE current_setting('autovacuum')::bool AND coalesce(o.enabled, true)) tables
   WHERE vacuum OR "analyze"`;

/**
 * What Postgres' background processes do and PGlite's single backend does not: autovacuum and the
 * checkpointer. Without them nothing reclaimed the row versions that applied changes, local writes
 * and the outbox leave behind (550 tasks updated 100 times each by the stream: a 45 MB task table
 * instead of 0.14 MB, a scan of it 9.6 ms instead of 0.2; `yarn bench client`), and the WAL was
 * never checkpointed, so `pg_wal` grew by every byte written (54 segments, 864 MB, after 880 MB of
 * WAL), on disk, in OPFS, or in memory for an IndexedDB replica.
 *
 * Once the replica was written and then quiet for a second (at the latest five seconds after the
 * first write, or at once after a thousand rows), each table past Postgres' own autovacuum
 * thresholds (see DUE_SQL: the table's storage parameters, else the replica's settings) is vacuumed
 * or analyzed, and the replica checkpoints when 32 MB of WAL were written since its last
 * checkpoint. It runs between the replica's other statements (PGlite runs one at a time).
 *
 * @example
 *   const upkeep = new ReplicaUpkeep(db, (error) => console.warn(error));
 *   upkeep.written(changes.length); // after each write; the replica is looked after once it is quiet
 *   await upkeep.close();
 */
export class ReplicaUpkeep {
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

  /** `rows` rows of the replica were written: it is looked after once it is quiet, or now after a burst. */
  written(rows = 1): void {
    if (this.closed) return;
    const now = Date.now();
    this.firstWrite ??= now;
    this.rows += rows;
    const wait = this.rows >= LOOK_AFTER_ROWS ? 0 : Math.max(0, Math.min(QUIET_MS, this.firstWrite + MAX_WAIT_MS - now));
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.look(), wait);
  }

  /** Vacuums, analyzes and checkpoints what is due now; resolves when done (what failed is reported, not thrown). */
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
      const due = await this.db.query<{ schema: string; name: string; vacuum: boolean; analyze: boolean }>(DUE_SQL);
      for (const table of due.rows) {
        if (this.closed) return;
        const name = `${quoteIdent(table.schema)}.${quoteIdent(table.name)}`;
        await this.db.exec(table.vacuum ? `VACUUM ${table.analyze ? '(ANALYZE) ' : ''}${name}` : `ANALYZE ${name}`).catch((error: { code?: string }) => {
          if (error.code !== UNDEFINED_TABLE) throw error;
        });
      }
      // A checkpoint lets Postgres remove or recycle the WAL segments before it (it keeps a few, `min_wal_size`).
      const { rows } = await this.db.query<{ written: string }>(`SELECT (pg_current_wal_insert_lsn() - redo_lsn)::text AS written FROM pg_control_checkpoint()`);
      if (Number(rows[0]!.written) > CHECKPOINT_AFTER_BYTES && !this.closed) await this.db.exec('CHECKPOINT');
    } catch (error) {
      // A transaction the app holds open by hand: the next write looks again.
      if ((error as { code?: string }).code === IN_TRANSACTION) return;
      this.onFailed(error as Error);
    }
  }
}
