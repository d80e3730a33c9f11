import type { WebSocket } from 'ws';

/** Socket bytes waiting to go out above which a session stops producing. */
const HIGH_WATER = 4 << 20;

/** The client read nothing for longer than it may (see drained). */
export class Stalled extends Error {}

/**
 * Waits while the socket has too much queued (a slow client); false once `closed()`. Throws
 * Stalled when the queue has not gone down for `stallMs`.
 */
export async function drained(socket: WebSocket, closed: () => boolean, stallMs = Number.POSITIVE_INFINITY): Promise<boolean> {
  let lowest = socket.bufferedAmount;
  let progressAt = Date.now();
  while (socket.bufferedAmount > HIGH_WATER) {
    if (closed()) return false;
    if (socket.bufferedAmount < lowest) {
      lowest = socket.bufferedAmount;
      progressAt = Date.now();
    } else if (Date.now() - progressAt > stallMs) {
      throw new Stalled(`the client read nothing for ${stallMs} ms`);
    }
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
  return !closed();
}

/**
 * A token bucket for one socket's messages: `rate` a second on average, bursts up to `burst`.
 *
 * @example
 *   const budget = new MessageBudget(100, 200);
 *   if (!budget.take()) close('too many messages');
 */
export class MessageBudget {
  private tokens: number;
  private refilled = Date.now();

  constructor(
    readonly rate: number,
    private readonly burst: number,
    private readonly clock: () => number = Date.now,
  ) {
    this.tokens = burst;
  }

  /** Spends one message; false when the budget is exhausted. */
  take(): boolean {
    const now = this.clock();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.refilled) / 1000) * this.rate);
    this.refilled = now;
    return (this.tokens -= 1) >= 0;
  }
}
