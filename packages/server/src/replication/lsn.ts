/**
 * Log sequence numbers. Postgres writes them as two hex halves (`16/B374D848`); walsync orders
 * and stores them as one 64-bit number.
 */
export function lsnToBigInt(lsn: string): bigint {
  const match = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(lsn);
  if (!match) throw new Error(`"${lsn}" is not a Postgres LSN`);
  return (BigInt(`0x${match[1]}`) << 32n) | BigInt(`0x${match[2]}`);
}

/** The canonical text form, as Postgres prints a pg_lsn (`16/B374D848`). */
export function bigIntToLsn(value: bigint): string {
  return `${(value >> 32n).toString(16).toUpperCase()}/${(value & 0xffffffffn).toString(16).toUpperCase()}`;
}

export function normalizeLsn(lsn: string): string {
  return bigIntToLsn(lsnToBigInt(lsn));
}

/** Microseconds since the Unix epoch as an ISO 8601 timestamp that keeps the microseconds. */
export function microsToIso(micros: bigint): string {
  const millis = micros / 1000n;
  const rest = micros % 1000n;
  return `${new Date(Number(millis)).toISOString().slice(0, -1)}${rest.toString().padStart(3, '0')}Z`;
}
