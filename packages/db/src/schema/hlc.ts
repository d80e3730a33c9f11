/**
 * Hybrid logical clock timestamps, shared by the server and every client.
 *
 * Text form: `<wall ms, 15 digits>:<counter, 6 digits>:<node>` — e.g.
 * `001795396924095:000003:6f1c…`. Plain string order is HLC order: wall time, then counter, then
 * node id, so ties between clients are broken by client id, and Postgres can compare the `hlc`
 * column with `<`/`>`. Writes from outside walsync are stamped on the server with node `server`.
 */
export interface Hlc {
  wallMs: number;
  counter: number;
  node: string;
}

const HLC_PATTERN = /^(\d{15}):(\d{6}):([A-Za-z0-9_-]{1,64})$/;
export const NODE_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

export function formatHlc(hlc: Hlc): string {
  return `${String(hlc.wallMs).padStart(15, '0')}:${String(hlc.counter).padStart(6, '0')}:${hlc.node}`;
}

/** Parses the text form; undefined when it is not a valid HLC. */
export function parseHlc(text: string): Hlc | undefined {
  const match = HLC_PATTERN.exec(text);
  if (!match) return undefined;
  return { wallMs: Number(match[1]), counter: Number(match[2]), node: match[3]! };
}

/** The PL/pgSQL variables `hlcAfterPlpgsql` needs, for a function's DECLARE section. */
export const HLC_VARIABLES = 'walsync_wall bigint;';

/**
 * The clock itself, the one definition both engines expand into their SQL: an expression for the
 * next timestamp for `node` after `previous` (the last one this node issued or saw, or the HLC of
 * the row being overwritten), with `wall` the wall clock in ms. The wall clock, unless `previous` is
 * at or ahead of it: then its wall time with the counter moved on, so the result always orders
 * after `previous`. Compares the zero-padded text, so nothing is cast unless it is well formed.
 *
 * @example
 *   `UPDATE walsync_state SET value = ${hlcAfterSql('value', 'walsync_wall', 'substr(value, 24)')} WHERE …`
 */
export function hlcAfterSql(previous: string, wall: string, node: string): string {
  return `(CASE WHEN ${previous} ~ '^[0-9]{15}:[0-9]{6}:' AND substr(${previous}, 1, 15) >= lpad(${wall}::text, 15, '0')
        THEN substr(${previous}, 1, 16) || lpad((substr(${previous}, 17, 6)::integer + 1)::text, 6, '0')
        ELSE lpad(${wall}::text, 15, '0') || ':000000' END || ':' || ${node})`;
}

/** PL/pgSQL statements that read the wall clock into `walsync_wall` (see HLC_VARIABLES). */
export const HLC_WALL_PLPGSQL = 'walsync_wall := floor(extract(epoch FROM clock_timestamp()) * 1000);';

/**
 * `hlcAfterSql` as PL/pgSQL statements that set `into` (the server's stamp for writes from outside
 * walsync). Expanded inline rather than called: a nested PL/pgSQL call costs a write about 15%.
 *
 * @example
 *   `DECLARE stamp text; ${HLC_VARIABLES} BEGIN ${hlcAfterPlpgsql('last', "'server'", 'stamp')} RETURN stamp; END`
 */
export function hlcAfterPlpgsql(previous: string, node: string, into: string): string {
  return `${HLC_WALL_PLPGSQL}
      ${into} := ${hlcAfterSql(previous, 'walsync_wall', node)};`;
}
