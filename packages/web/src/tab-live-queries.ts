/**
 * A tab's live queries, kept across a change of leader. A live query runs where the replica is open:
 * in the leader tab's worker. When that tab closes (or reloads) and another worker takes over, the
 * queries set up through the old one are gone with it; each is set up again through the new leader
 * and its callbacks get the new leader's rows, so a board in another tab goes on updating.
 */
import type { LiveNamespace, LiveQuery, LiveQueryResults } from '@electric-sql/pglite/live';
import { SyncClientError } from './types';

/** The options form of `live.query` (PGlite does not export its type). */
export type LiveQueryOptions<T> = Extract<Parameters<LiveNamespace['query']>[0], { query: string }> & { callback?: (results: LiveQueryResults<T>) => void };

type Callback = (results: LiveQueryResults<unknown>) => void;

/** Sets one live query up where the tab's statements go now (its own worker, or PGlite's path to the leader's). */
export type SetUpLive = (options: LiveQueryOptions<unknown>) => Promise<LiveQuery<unknown>>;

interface Held {
  options: LiveQueryOptions<unknown>;
  callbacks: Set<Callback>;
  /** The set-up results go to the callbacks from (a newer set-up replaces it). */
  current?: LiveQuery<unknown>;
  /** The leader it was set up through (see `leaderChanged`). */
  leader: number;
  stopped: boolean;
}

/** What a statement sent to a leader that went meanwhile fails with: the tab's own, or PGlite's worker's. */
export function lostToLeaderChange(error: unknown): boolean {
  return (error instanceof SyncClientError && error.code === 'leader_changed') || (error as Error)?.name === 'LeaderChangedError' || /^Leader changed/.test((error as Error)?.message ?? '');
}

export class TabLiveQueries {
  /** Counts the leaders this tab has known: a query set up through an older one is set up again. */
  private leader = 0;
  private readonly held = new Set<Held>();

  constructor(private readonly setUpLive: SetUpLive) {}

  /** `db.live.query`: the first rows, then every new result to the callbacks, whichever worker leads. */
  async query(options: LiveQueryOptions<unknown>): Promise<LiveQuery<unknown>> {
    const { signal } = options;
    const entry: Held = { options: { ...options, signal: undefined }, callbacks: new Set(options.callback ? [options.callback] : []), leader: -1, stopped: false };
    const first = await this.setUp(entry);
    this.held.add(entry);
    // A leader that changed while it was set up: set up again (its rows reach the callbacks).
    if (entry.leader !== this.leader) void this.moveOver(entry);
    const stop = async () => {
      entry.stopped = true;
      this.held.delete(entry);
      await entry.current?.unsubscribe().catch((error: unknown) => {
        if (!lostToLeaderChange(error)) throw error;
      });
    };
    if (signal?.aborted) await stop();
    else signal?.addEventListener('abort', () => void stop(), { once: true });
    return {
      initialResults: first.initialResults,
      subscribe: (callback) => void entry.callbacks.add(callback as Callback),
      unsubscribe: async (callback) => {
        if (callback) entry.callbacks.delete(callback as Callback);
        if (!callback || entry.callbacks.size === 0) await stop();
      },
      refresh: (refresh) => entry.current!.refresh(refresh),
    };
  }

  /** A new leader: every query set up through an earlier one is set up again through it. */
  leaderChanged(): void {
    this.leader++;
    for (const entry of this.held) void this.moveOver(entry);
  }

  /** Sets `entry` up (again, when the leader changes before it answered) and makes it the one whose results count. */
  private async setUp(entry: Held): Promise<LiveQuery<unknown>> {
    for (;;) {
      const leader = this.leader;
      let live: LiveQuery<unknown> | undefined;
      try {
        live = await this.setUpLive({
          ...entry.options,
          callback: (results) => {
            if (entry.current !== live || entry.stopped) return;
            for (const callback of entry.callbacks) callback(results);
          },
        });
      } catch (error) {
        // The leader went before it answered: the next one is asked (statements wait for it).
        if (lostToLeaderChange(error) && !entry.stopped) continue;
        throw error;
      }
      const before = entry.current;
      entry.current = live;
      entry.leader = leader;
      if (before) void before.unsubscribe().catch(() => undefined);
      return live;
    }
  }

  private async moveOver(entry: Held): Promise<void> {
    if (entry.stopped || entry.leader === this.leader) return;
    try {
      const live = await this.setUp(entry);
      if (entry.stopped) return void live.unsubscribe().catch(() => undefined);
      // What changed while no leader ran it is in its first rows.
      for (const callback of entry.callbacks) callback(live.initialResults);
    } catch {
      // Its statement fails in the new leader too (a dropped table, say): it stays where it was.
    }
  }
}
