import type { ChangeResult } from '@walsync/db/browser';
import type { SyncEmitter } from './emitter';
import type { ReplicaStore } from './replica-store';

/** Local writes sent in one `write` message (the server's limit is 500). */
const PUSH_BATCH = 500;

export interface PushChannel {
  /** Whether the connection is live (writes are sent only then). */
  isLive(): boolean;
  send(message: unknown): void;
  /** `sending` changed (the connection's status may have). */
  changed(): void;
}

/**
 * The outbox push of one connection: sends the replica's unsent writes in batches over the socket,
 * one at a time, and settles each answer in the replica (one statement). A write whose answer is lost
 * with its connection stays in the outbox and goes again (the server answers a retry as a duplicate).
 */
export class OutboxPush {
  /** Local writes are out, waiting for their answers. */
  sending = false;
  private pushing: Promise<void> | undefined;
  private again = false;
  private readonly answers = new Map<string, (results: ChangeResult[]) => void>();

  constructor(
    private readonly store: ReplicaStore,
    private readonly events: SyncEmitter,
    private readonly channel: PushChannel,
  ) {}

  /** Pushes now, or once more after the push under way. */
  schedule(): void {
    if (!this.channel.isLive()) return;
    if (this.pushing) {
      this.again = true;
      return;
    }
    this.pushing = this.run()
      .catch((error: Error) => this.events.emit('error', error))
      .finally(() => {
        this.pushing = undefined;
        this.sending = false;
        this.channel.changed();
        if (this.again) {
          this.again = false;
          this.schedule();
        }
      });
  }

  /** Resolves when the push under way (if any) is done. */
  async done(): Promise<void> {
    await this.pushing;
  }

  /** The server's `write_result`. */
  answered(requestId: string, results: ChangeResult[]): void {
    this.answers.get(requestId)?.(results);
    this.answers.delete(requestId);
  }

  /** The connection is gone: writes waiting for an answer go again on the next one. */
  connectionLost(): void {
    for (const settle of this.answers.values()) settle([]);
    this.answers.clear();
  }

  private async run(): Promise<void> {
    while (this.channel.isLive()) {
      const sent = await this.store.unsent(PUSH_BATCH);
      if (sent.length === 0) return;
      this.sending = true;
      this.channel.changed();
      const requestId = crypto.randomUUID();
      const answered = new Promise<ChangeResult[]>((resolve) => this.answers.set(requestId, resolve));
      this.channel.send({ type: 'write', requestId, changes: sent });
      const results = await answered;
      if (results.length === 0) return; // the connection dropped; the outbox is pushed again after reconnecting
      await this.store.settle(sent, results);
      const count = (status: ChangeResult['status']) => results.filter((result) => result.status === status).length;
      this.events.emit('push', { sent: sent.length, applied: count('applied'), rejected: count('rejected'), errors: count('error') });
      results.forEach((result, index) => {
        // A write that lost some of its columns to later writes, or landed on a row deleted meanwhile, is a conflict too.
        const lostSome = result.status === 'applied' && ((result.columns?.lost.length ?? 0) > 0 || (sent[index]!.op !== 'delete' && result.row?.deleted_at != null));
        if (result.status === 'rejected' || lostSome) this.events.emit('conflict', { table: sent[index]!.table, pk: sent[index]!.pk, result });
      });
      results.forEach((result, index) => {
        if (result.status === 'error') this.events.emit('error', new Error(`change ${sent[index]!.changeId} was refused: ${result.code}: ${result.message}`));
      });
    }
  }
}
