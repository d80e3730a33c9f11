/**
 * The one retry policy: exponential backoff with jitter. A reconnect, a restart of replication, a
 * re-listen: each waits `retryDelay(attempt)` before trying again.
 *
 * @example
 *   setTimeout(reconnect, retryDelay(attempt++));                   // 125–250 ms, 250–500 ms, … ≤ 10 s
 *   setTimeout(restart, retryDelay(attempt, { baseMs: 250, maxMs: 5_000 }));
 */
export interface RetryPolicy {
  /** The first delay (before jitter). */
  baseMs?: number;
  /** No delay is longer than this. */
  maxMs?: number;
}

export function retryDelay(attempt: number, { baseMs = 250, maxMs = 10_000 }: RetryPolicy = {}, random: () => number = Math.random): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 30));
  // Half fixed, half random: a crowd of clients that lost one server does not return all at once.
  return Math.round(ceiling * (0.5 + random() / 2));
}
