/** Microseconds since the Unix epoch (pgoutput's commit time) as an ISO 8601 timestamp that keeps the microseconds. */
export function microsToIso(micros: bigint): string {
  const millis = micros / 1000n;
  const rest = micros % 1000n;
  return `${new Date(Number(millis)).toISOString().slice(0, -1)}${rest.toString().padStart(3, '0')}Z`;
}
