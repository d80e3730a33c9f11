import type pg from 'pg';

/**
 * Registers `clientId` for `userId`, or confirms it is theirs. A client id names one replica of one
 * user: another user's writes under it would be filtered out of that replica's stream as its own
 * echo, and it would never receive them. Returns false when the id belongs to another user.
 *
 * @example
 *   if (!(await claimClientId(pool, 'laptop-1', userId))) refuse();
 */
export async function claimClientId(pool: pg.Pool, clientId: string, userId: string, schemaVersion?: string | null): Promise<boolean> {
  const result = await pool.query(
    `INSERT INTO sync_client (client_id, user_id, schema_version) VALUES ($1, $2, $3)
     ON CONFLICT (client_id) DO UPDATE SET schema_version = coalesce(EXCLUDED.schema_version, sync_client.schema_version), connected_at = now(), last_seen = now()
       WHERE sync_client.user_id = EXCLUDED.user_id
     RETURNING 1`,
    [clientId, userId, schemaVersion ?? null],
  );
  return result.rowCount === 1;
}
