import { EventEmitter } from 'node:events';
import pg from 'pg';
import type { Logger } from 'pino';
import { connectionConfig } from '../connection';

export type Role = 'leader' | 'follower' | 'stopped';

export interface LeaderElectionOptions {
  url: string;
  /** One lock per database: the key names the role, not the process. */
  lockName?: string;
  pollIntervalMs?: number;
  log: Logger;
}

/**
 * Elects one replicator per database with a session-level Postgres advisory lock, held on a
 * connection of its own. Followers try again every `pollIntervalMs`; when the leader dies its
 * connection closes, the lock is free, and a follower takes over. Losing the connection demotes
 * the leader at once.
 *
 * @example
 *   const election = new LeaderElection({ url, log });
 *   election.on('elected', startReplicating).on('demoted', stopReplicating);
 *   await election.start();
 */
export class LeaderElection extends EventEmitter<{ elected: []; demoted: [Error | undefined] }> {
  private client: pg.Client | undefined;
  private timer: NodeJS.Timeout | undefined;
  private attempt: Promise<void> | undefined;
  role: Role = 'stopped';

  constructor(private readonly options: LeaderElectionOptions) {
    super();
  }

  async start(): Promise<void> {
    this.role = 'follower';
    await this.tryToLead();
  }

  async stop(): Promise<void> {
    const wasLeader = this.role === 'leader';
    this.role = 'stopped';
    clearTimeout(this.timer);
    await this.attempt;
    await this.client?.end().catch(() => undefined);
    this.client = undefined;
    if (wasLeader) this.emit('demoted', undefined);
  }

  private schedule(): void {
    if (this.role !== 'follower') return;
    this.timer = setTimeout(() => void this.tryToLead(), this.options.pollIntervalMs ?? 500);
  }

  private tryToLead(): Promise<void> {
    this.attempt = (async () => {
      try {
        if (!this.client) {
          const client = new pg.Client(connectionConfig(this.options.url, 'walsync-leader-lock'));
          client.on('error', (error) => this.lose(client, error));
          client.on('end', () => this.lose(client, new Error('the leader lock connection closed')));
          await client.connect();
          this.client = client;
        }
        const result = await this.client.query<{ locked: boolean }>(`SELECT pg_try_advisory_lock(hashtext($1)) AS locked`, [
          this.options.lockName ?? 'walsync.replicator',
        ]);
        if (result.rows[0]!.locked && this.role === 'follower') {
          this.role = 'leader';
          this.options.log.info('elected replication leader');
          this.emit('elected');
          return;
        }
      } catch (error) {
        this.options.log.warn({ err: error }, 'leader election attempt failed; retrying');
        await this.client?.end().catch(() => undefined);
        this.client = undefined;
      }
      this.schedule();
    })();
    return this.attempt;
  }

  private lose(client: pg.Client, error: Error): void {
    if (client !== this.client) return;
    this.client = undefined;
    if (this.role === 'leader') {
      this.role = 'follower';
      this.options.log.error({ err: error }, 'lost the replication leader lock');
      this.emit('demoted', error);
      this.schedule();
    }
  }
}
