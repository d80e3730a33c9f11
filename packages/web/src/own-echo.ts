import type { PGlite, Transaction } from '@electric-sql/pglite';
import { type ChangeResult, isPosition } from '@walsync/db/browser';

/**
 * What a replica keeps so that its own answered rows survive a removal (see docs/decisions.md, "After
 * a removal…"). It stores its writes' rows from their answers, ahead of the stream, and the stream
 * skips a client's own changes; a removal applied before the stream passed those writes can take
 * their rows along (a foreign key's cascade). So the replica records how far its answers reach
 * (`answered`), and before applying a removal that lies behind them, how far its own changes must
 * come again as data (`echo`), which its next hello names. Both are recorded before what they guard
 * commits: recorded too far, they only cost rows sent twice.
 */

/** Records the newest `lsn` among `results` the replica is about to store (the answers to a push). */
export async function recordAnswered(db: PGlite | Transaction, results: ChangeResult[]): Promise<void> {
  const answered = results.flatMap((result) => (result.status === 'applied' && isPosition(result.lsn) ? [result.lsn] : []));
  if (answered.length === 0) return;
  await db.query(
    `INSERT INTO walsync_state SELECT 'answered', max(lsn::pg_lsn)::text FROM unnest($1::text[]) lsn
       ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value WHERE EXCLUDED.value::pg_lsn > walsync_state.value::pg_lsn`,
    [answered],
  );
}

/**
 * Before a removal is applied (a batch with deletes, a replacing snapshot's removeUnseen) at
 * `position` (SQL): when the replica's answers reach past it, their reach becomes `echo`.
 */
export async function markEcho(db: PGlite | Transaction, position: string, params: unknown[] = []): Promise<void> {
  await db.query(
    `INSERT INTO walsync_state SELECT 'echo', a.value FROM walsync_state a WHERE a.key = 'answered' AND a.value::pg_lsn > coalesce(${position}, '0/0')::pg_lsn
       ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value WHERE EXCLUDED.value::pg_lsn > walsync_state.value::pg_lsn`,
    params,
  );
}

/** Where a hello from `position` asks for the client's own changes as data (`hello.echoThrough`), if anywhere. */
export async function echoThrough(db: PGlite | Transaction, position: string): Promise<string | undefined> {
  const { rows } = await db.query<{ value: string }>(`SELECT value FROM walsync_state WHERE key = 'echo' AND value::pg_lsn > $1::pg_lsn`, [position]);
  return rows[0]?.value;
}
