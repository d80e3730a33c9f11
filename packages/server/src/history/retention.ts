import type pg from 'pg';

/**
 * Drops change_history up to and including `through` (a commit LSN as a number) and records that
 * horizon, so a client whose position is older is told to re-snapshot instead of silently missing
 * what was dropped.
 */
export async function pruneHistory(client: pg.ClientBase, through: bigint): Promise<number> {
  await client.query('BEGIN');
  try {
    await client.query(
      `INSERT INTO walsync_history_horizon (pruned_through) VALUES ($1)
       ON CONFLICT (singleton) DO UPDATE SET pruned_through = greatest(walsync_history_horizon.pruned_through, EXCLUDED.pruned_through)`,
      [through.toString()],
    );
    const deleted = await client.query(`DELETE FROM change_history WHERE commit_lsn <= $1`, [through.toString()]);
    await client.query('COMMIT');
    return deleted.rowCount ?? 0;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
}

/** The commit LSN up to which history was pruned (0 when it never was). */
export async function historyHorizon(client: pg.ClientBase | pg.Pool): Promise<bigint> {
  const result = await client.query<{ pruned_through: string }>(`SELECT pruned_through FROM walsync_history_horizon`);
  return BigInt(result.rows[0]?.pruned_through ?? 0);
}
