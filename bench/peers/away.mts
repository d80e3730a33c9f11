/**
 * The client that goes away and comes back, for the catch-up figure: one system's client on disk, in
 * a process of its own, so its reopen does not pay for the bench process's heap (both systems' other
 * clients, every sample so far). PGlite's start runs a full garbage collection of its process: in the
 * bench's process it took 380 ms instead of 170–200 (see notes.md). Forked by peers.mts, one per
 * system; told what to be over IPC, it opens its client until it holds the workspace, closes it and
 * answers `{ away }`; told the last commit (`back`), it reopens, closes again once that commit's
 * value is in it and answers `{ seconds }` from the reopen to that value (the close is not timed),
 * and for walsync `{ steps }`: when, in ms from the reopen, the replica was open (PGlite and walsync's
 * start), the batch with that commit arrived, and it was applied;
 * it ends on `stop`.
 */
import { type SyncClient, createSyncClient } from '@walsync/web';
import { type BenchZero, watchTasks, zeroClient } from './zero-clients.mts';

export type AwayOrder =
  | { system: 'walsync'; url: string; token: string; dataDir: string }
  | { system: 'zero'; url: string; user: string; storeDirectory: string; workspaceId: string };

export interface Commit {
  id: string;
  title: string;
}

/** One system's client: open it, and resolve once it holds `last` (or its whole workspace). */
interface Away {
  open(last?: Commit): Promise<void>;
  close(): Promise<void>;
  /** When each step of the last open happened (performance.now()), where the system tells. */
  steps?: Record<string, number>;
}

function walsyncAway(order: Extract<AwayOrder, { system: 'walsync' }>): Away {
  let client: SyncClient | undefined;
  const holds = async (last: Commit) => (await client!.db.query<{ title: string }>(`SELECT title FROM task WHERE id = $1`, [last.id])).rows[0]?.title === last.title;
  const steps: Record<string, number> = {};
  return {
    steps,
    async open(last) {
      client = await createSyncClient({ url: order.url, token: order.token, dataDir: order.dataDir });
      steps.open = performance.now();
      client.on('pull:received', () => (steps.received ??= performance.now()));
      // Looked for once now and after each batch the client applies, as an app's live query would
      // (polling would queue its reads on the replica's one connection, ahead of the apply).
      const applied = new Promise<void>((resolve, reject) => {
        if (!last) return resolve();
        const check = () => void holds(last).then((found) => found && (off(), (steps.applied = performance.now()), resolve()), reject);
        const off = client!.on('pull:applied', check);
        check();
      });
      await client.ready;
      await applied;
    },
    close: async () => client?.close(),
  };
}

function zeroAway(order: Extract<AwayOrder, { system: 'zero' }>): Away {
  let client: BenchZero | undefined;
  return {
    async open(last) {
      client = zeroClient(order.url, 'zero-away', order.storeDirectory);
      const tasks = watchTasks(client, order.workspaceId);
      await tasks.until((rows, complete) => (last ? rows.some((row) => row.id === last.id && row.title === last.title) : complete));
      tasks.destroy();
    },
    close: async () => client?.close(),
  };
}

let away: Away | undefined;

process.on('message', (message: AwayOrder | { back: Commit } | 'stop') => {
  const answer = (work: Promise<object>) =>
    work.then(
      (result) => process.send?.(result),
      (error: Error) => process.send?.({ error: error.stack ?? String(error) }),
    );
  if (message === 'stop') {
    void (away?.close() ?? Promise.resolve()).finally(() => process.exit(0));
  } else if ('back' in message) {
    const began = performance.now();
    for (const step of Object.keys(away!.steps ?? {})) delete away!.steps![step];
    answer(
      away!.open(message.back).then(async () => {
        const seconds = (performance.now() - began) / 1000;
        const steps = Object.fromEntries(Object.entries(away!.steps ?? {}).map(([step, at]) => [step, Math.round(at - began)]));
        // Closed again, untimed, for the next round's return.
        await away!.close();
        return { seconds, steps };
      }),
    );
  } else {
    away = message.system === 'walsync' ? walsyncAway(message) : zeroAway(message);
    answer(away.open().then(() => away!.close()).then(() => ({ away: true })));
  }
});
