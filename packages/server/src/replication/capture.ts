import { type SyncedTable, retryDelay } from '@walsync/db/server';
import type { Logger } from 'pino';
import type { Metrics } from '../metrics';
import { LeaderElection } from './leader';
import { Replicator, type ReplicatorStatus } from './replicator';

export interface CaptureOptions {
  url: string;
  tables: SyncedTable[];
  slotName: string;
  log: Logger;
  metrics: Metrics;
  /** How long a replicator that failed waits before it starts again. */
  restartDelayMs?: number;
}

/**
 * Change capture for one server process: takes part in the leader election and, while leader,
 * runs the replicator, restarting it after failures (a slot still held by a dying leader, a
 * database restart). Followers capture nothing.
 */
export class Capture {
  private readonly election: LeaderElection;
  private replicator: Replicator | undefined;
  private restartTimer: NodeJS.Timeout | undefined;
  private pingTimer: NodeJS.Timeout | undefined;
  private stopping = false;
  private readonly capturedListeners: Array<(status: ReplicatorStatus) => void> = [];

  constructor(private readonly options: CaptureOptions) {
    this.election = new LeaderElection({ url: options.url, log: options.log });
    this.election.on('elected', () => {
      options.metrics.isLeader.set(1);
      void this.runReplicator();
    });
    this.election.on('demoted', () => {
      options.metrics.isLeader.set(0);
      void this.stopReplicator();
    });
  }

  get role() {
    return this.election.role;
  }

  get status(): ReplicatorStatus | undefined {
    return this.replicator?.status;
  }

  /** Resolves once this process knows whether it leads; capture then runs in the background. */
  async start(): Promise<void> {
    this.stopping = false;
    await this.election.start();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.restartTimer);
    await this.stopReplicator();
    await this.election.stop();
  }

  /** Calls `listener` after every batch this process writes to change_history. */
  onCaptured(listener: (status: ReplicatorStatus) => void): void {
    this.capturedListeners.push(listener);
  }

  /** Failed starts in a row: the next restart waits longer (see retryDelay). */
  private restarts = 0;

  private async runReplicator(): Promise<void> {
    if (this.stopping || this.election.role !== 'leader' || this.replicator) return;
    const replicator = new Replicator({ url: this.options.url, tables: this.options.tables, slotName: this.options.slotName, log: this.options.log });
    this.replicator = replicator;
    let counted = 0;
    replicator.on('captured', (status, batchSeconds) => {
      this.options.metrics.captureBatchSeconds.observe(batchSeconds);
      this.options.metrics.capturedChanges.inc(status.capturedChanges - counted);
      counted = status.capturedChanges;
      for (const listener of this.capturedListeners) listener(status);
    });
    replicator.on('error', () => this.restartLater(replicator));
    try {
      await replicator.start();
      this.restarts = 0;
      this.pingTimer = setInterval(() => replicator.ping(), 1000);
    } catch (error) {
      this.options.log.warn({ err: error }, 'replication could not start; retrying');
      await replicator.stop();
      this.restartLater(replicator);
    }
  }

  private restartLater(failed: Replicator): void {
    if (this.replicator !== failed) return;
    clearInterval(this.pingTimer);
    this.replicator = undefined;
    if (this.stopping) return;
    this.restartTimer = setTimeout(() => void this.runReplicator(), retryDelay(this.restarts++, { baseMs: this.options.restartDelayMs ?? 250, maxMs: 5_000 }));
  }

  private async stopReplicator(): Promise<void> {
    clearInterval(this.pingTimer);
    const replicator = this.replicator;
    this.replicator = undefined;
    await replicator?.stop();
  }
}
