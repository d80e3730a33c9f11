import type pg from 'pg';
import type { Capture } from '../replication/capture';

export interface Health {
  status: 'ok';
  role: 'leader' | 'follower' | 'stopped';
  slot: { name: string; exists: boolean; active: boolean; confirmedLsn: string | null };
  replication: {
    /** WAL bytes the slot has not confirmed yet. */
    lagBytes: number | null;
    /** How far behind the slot's consumer is in time, as Postgres measures it (flush_lag); 0 when caught up. */
    lagSeconds: number | null;
    lastCapturedLsn: string | null;
    lastCapturedAt: string | null;
  };
  changeHistory: { rowsEstimate: number; bytes: number };
  clients: number;
}

/** Health as any server process sees it: the slot and history are read from the database, so followers answer too. */
export async function readHealth(pool: pg.Pool, capture: Capture, slotName: string, clients: number): Promise<Health> {
  const result = await pool.query(
    `SELECT s.slot_name IS NOT NULL AS exists, coalesce(s.active, false) AS active, s.confirmed_flush_lsn::text AS confirmed,
            greatest(pg_wal_lsn_diff(pg_current_wal_lsn(), s.confirmed_flush_lsn), 0)::bigint AS lag_bytes,
            coalesce(extract(epoch FROM r.flush_lag), 0)::float8 AS lag_seconds,
            last.lsn AS last_lsn, last."timestamp" AS last_at,
            pg_total_relation_size('change_history') AS bytes,
            greatest((SELECT reltuples FROM pg_class WHERE oid = 'change_history'::regclass), 0)::bigint AS rows
       FROM (SELECT 1) one
       LEFT JOIN pg_replication_slots s ON s.slot_name = $1
       LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid
       LEFT JOIN LATERAL (SELECT lsn, "timestamp" FROM change_history ORDER BY commit_lsn DESC, op_index DESC LIMIT 1) last ON true`,
    [slotName],
  );
  const row = result.rows[0];
  return {
    status: 'ok',
    role: capture.role,
    slot: { name: slotName, exists: row.exists, active: row.active, confirmedLsn: row.confirmed },
    replication: {
      lagBytes: row.lag_bytes === null ? null : Number(row.lag_bytes),
      lagSeconds: row.exists ? row.lag_seconds : null,
      lastCapturedLsn: row.last_lsn,
      lastCapturedAt: row.last_at ? new Date(row.last_at).toISOString() : null,
    },
    changeHistory: { rowsEstimate: Number(row.rows), bytes: Number(row.bytes) },
    clients,
  };
}
