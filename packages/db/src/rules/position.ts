import { z } from 'zod';

/**
 * A position in the change stream: the commit LSN of the last transaction a replica has, in the
 * form Postgres prints a `pg_lsn` (`16/B374D848`, two upper-case hex halves). Ordered and stored
 * as one 64-bit number. The one definition the server, every client and the protocol share.
 *
 * @example
 *   parsePosition('0/16B3748');                      // 23803720n
 *   formatPosition(23803720n);                       // '0/16B3748'
 *   comparePositions('0/16B3748', '1/0');            // -1
 */
export type Position = string;

const LSN = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/;

/** Whether `text` is a position in its canonical, upper-case form (what the protocol accepts). */
export function isPosition(text: unknown): text is Position {
  return typeof text === 'string' && LSN.test(text) && text === text.toUpperCase();
}

/** The number of an LSN; Postgres' own input rules (either case) apply. Throws for anything else. */
export function parsePosition(text: string): bigint {
  const match = LSN.exec(text);
  if (!match) throw new Error(`${JSON.stringify(text)} is not a Postgres LSN (like 0/16B3748)`);
  return (BigInt(`0x${match[1]}`) << 32n) | BigInt(`0x${match[2]}`);
}

/** The canonical text of an LSN number. */
export function formatPosition(value: bigint): Position {
  return `${(value >> 32n).toString(16).toUpperCase()}/${(value & 0xffffffffn).toString(16).toUpperCase()}`;
}

/** Orders two positions: -1, 0 or 1. */
export function comparePositions(a: Position, b: Position): number {
  const difference = parsePosition(a) - parsePosition(b);
  return difference < 0n ? -1 : difference > 0n ? 1 : 0;
}

export const PositionSchema = z.string().refine(isPosition, 'a position is an LSN like 0/16B3748');
