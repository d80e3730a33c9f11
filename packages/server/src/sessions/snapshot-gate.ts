/**
 * Admission to snapshots: at most `perUser` run at once for one user and `perProcess` for the whole
 * process, so that one user's many sockets (or many users hydrating at once) cannot take the
 * connections, memory and bandwidth everyone else needs. Waiters are served in arrival order,
 * skipping those whose user is at its limit; a waiter that goes away gives its place up.
 *
 * @example
 *   const gate = new SnapshotGate({ perUser: 2, perProcess: 4 });
 *   const release = await gate.enter(userId, () => session.closed);
 *   if (release) try { await sendSnapshot(...) } finally { release(); }
 */
export class SnapshotGate {
  private running = 0;
  private readonly byUser = new Map<string, number>();
  private readonly waiting: Waiter[] = [];

  constructor(readonly limits: { perUser: number; perProcess: number }) {}

  /** Snapshots running now and waiting for a place (for /metrics and tests). */
  get load(): { running: number; waiting: number } {
    return { running: this.running, waiting: this.waiting.length };
  }

  /**
   * Waits for a place; resolves to the function that gives it back, or to undefined once
   * `abandoned()` is true (the session closed while waiting; checked every second).
   */
  enter(user: string, abandoned: () => boolean): Promise<(() => void) | undefined> {
    if (abandoned()) return Promise.resolve(undefined);
    if (this.fits(user)) return Promise.resolve(this.admit(user));
    return new Promise((resolve) => {
      const waiter: Waiter = {
        user,
        admit: () => {
          clearInterval(watch);
          resolve(this.admit(user));
        },
      };
      const watch = setInterval(() => {
        if (!abandoned()) return;
        clearInterval(watch);
        this.waiting.splice(this.waiting.indexOf(waiter), 1);
        resolve(undefined);
      }, 1_000);
      this.waiting.push(waiter);
    });
  }

  private fits(user: string): boolean {
    return this.running < this.limits.perProcess && (this.byUser.get(user) ?? 0) < this.limits.perUser;
  }

  /** Takes a place for `user` and returns what gives it back (once). */
  private admit(user: string): () => void {
    this.running += 1;
    this.byUser.set(user, (this.byUser.get(user) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.running -= 1;
      const left = this.byUser.get(user)! - 1;
      if (left === 0) this.byUser.delete(user);
      else this.byUser.set(user, left);
      this.admitWaiting();
    };
  }

  /** Hands freed places to the earliest waiters that fit, so no later arrival jumps the queue. */
  private admitWaiting(): void {
    for (let index = 0; index < this.waiting.length; ) {
      const waiter = this.waiting[index]!;
      if (!this.fits(waiter.user)) {
        index += 1;
        continue;
      }
      this.waiting.splice(index, 1);
      waiter.admit();
    }
  }
}

interface Waiter {
  user: string;
  admit: () => void;
}
