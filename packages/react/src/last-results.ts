/**
 * The last rows of each live query, kept in localStorage so the next start of the page can paint
 * them at once, before the replica has opened (PGlite takes most of a second to start in a browser
 * worker). They are the page's own last view of its replica: replaced by the replica's answer as
 * soon as it comes, and never written back to the database.
 */

/** Stored rows larger than this (JSON characters) are not kept: localStorage is small and synchronous. */
const MAX_CHARS = 1_000_000;

export class LastResults {
  private readonly stored: Record<string, unknown[]>;
  /** The results this page has shown: only these are stored again, so queries no longer run fade out. */
  private readonly current = new Map<string, unknown[]>();
  private timer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    /** The localStorage key (one per replica, e.g. per user). */
    readonly key: string,
  ) {
    this.stored = read(key);
    if (typeof addEventListener === 'function') {
      addEventListener('pagehide', () => this.store());
      addEventListener('visibilitychange', () => document.visibilityState === 'hidden' && this.store());
    }
  }

  /** Whether the last session left any results to start from. */
  get available(): boolean {
    return Object.keys(this.stored).length > 0;
  }

  /** Stored rows this page showed for queries the replica has not answered yet: kept if the page goes first. */
  private readonly shownStored = new Set<string>();

  /** The rows `query` showed last time, if any. */
  get<T>(query: string): T[] | undefined {
    const current = this.current.get(query);
    if (current) return current as T[];
    if (this.stored[query]) this.shownStored.add(query);
    return this.stored[query] as T[] | undefined;
  }

  /** The replica's latest rows for `query`: stored within a second, and when the page is hidden or left. */
  set(query: string, rows: unknown[]): void {
    this.current.set(query, rows);
    this.timer ??= setTimeout(() => this.store(), 1_000);
  }

  private store(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    // A page left before the replica answered (a quick reload) keeps the last view it showed.
    const kept = [...this.shownStored].filter((query) => !this.current.has(query)).map((query) => [query, this.stored[query]] as const);
    if (this.current.size === 0 && kept.length === 0) return;
    const text = JSON.stringify(Object.fromEntries([...kept, ...this.current]), keepDates);
    try {
      if (text.length <= MAX_CHARS) localStorage.setItem(this.key, text);
      else localStorage.removeItem(this.key);
    } catch {
      // Storage full or refused (private mode): the next start waits for the replica, as without this.
    }
  }
}

/** A Date (timestamptz, date) as `{ $date }`, so it comes back a Date, as the replica gives it. */
function keepDates(this: Record<string, unknown>, key: string, value: unknown): unknown {
  const raw = this[key];
  return raw instanceof Date ? { $date: raw.toISOString() } : value;
}

function reviveDates(_key: string, value: unknown): unknown {
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    const keys = Object.keys(value);
    if (keys.length === 1 && keys[0] === '$date' && typeof (value as { $date: unknown }).$date === 'string') return new Date((value as { $date: string }).$date);
  }
  return value;
}

function read(key: string): Record<string, unknown[]> {
  try {
    const parsed: unknown = JSON.parse(localStorage.getItem(key) ?? '{}', reviveDates);
    return parsed && typeof parsed === 'object' && !Array.isArray(parsed) ? (parsed as Record<string, unknown[]>) : {};
  } catch {
    return {};
  }
}
