/**
 * The order of a page's first queries and its live queries' setups. Setting up a live query costs
 * PGlite a temporary view and triggers, hundreds of ms at a cold start (measured: 316 ms for the
 * pending count), and the database runs one statement at a time; a setup sent while the board's
 * first query was still to come kept the first card back by that much. So every live query's setup
 * waits until no first query is out, and a moment longer, in which the rows just shown mount what
 * sends the next ones.
 */
const SETTLE_MS = 20;

export class QueryOrder {
  private out = 0;
  private waiting: Array<() => void> = [];
  private timer: ReturnType<typeof setTimeout> | undefined;

  /** Runs a first (plain) query; setups wait for it. */
  first<T>(run: () => Promise<T>): Promise<T> {
    this.out++;
    clearTimeout(this.timer);
    this.timer = undefined;
    return run().finally(() => {
      this.out--;
      this.release();
    });
  }

  /** Resolves when no first query is out, and none started for a moment. */
  quiet(): Promise<void> {
    return new Promise((resolve) => {
      this.waiting.push(resolve);
      this.release();
    });
  }

  private release(): void {
    if (this.out > 0 || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.out > 0) return;
      const waiting = this.waiting;
      this.waiting = [];
      for (const resolve of waiting) resolve();
    }, SETTLE_MS);
  }
}
