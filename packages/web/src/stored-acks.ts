import type { SyncEmitter } from './emitter';
import type { ReplicaStore } from './replica-store';
import { SyncClientError } from './types';

/**
 * Acks go at most this often, the newest position waiting: each is a write to the server's database,
 * and a socket sending more than 100 messages a second is closed as a flood (a fast stream is many
 * small batches). A later ack only means the server learns the position later.
 */
const ACK_INTERVAL_MS = 100;

/**
 * Acks a position once everything committed up to it is in storage (invariant 3). Where storing is
 * costly (IndexedDB: whole files copied), acks are coalesced: one store and one ack, for the newest
 * position, `delayMs` after the first; a late ack only means the server learns it later (a client
 * resumes from the position in its own database). The next batch is applied meanwhile. Acks are
 * at least ACK_INTERVAL_MS apart.
 *
 * @example
 *   const acks = new StoredAcks(store, events, 250);
 *   acks.ackWhenStored(message.position, (position) => send({ type: 'sync_ack', position }));
 *   acks.cancel(); // the socket is gone: its acks go with it
 */
export class StoredAcks {
  private pending: string | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  /** When the last ack was planned (see ACK_INTERVAL_MS). */
  private ackedAt = 0;

  constructor(
    private readonly store: ReplicaStore,
    private readonly events: SyncEmitter,
    /** How long acks wait to be coalesced with later ones: 0 in Node, where storing is free. */
    private readonly delayMs: number,
  ) {}

  /** Acks `position` with `send` once it is stored (with the newest position planned by then). */
  ackWhenStored(position: string, send: (position: string) => void): void {
    this.pending = position;
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.ackedAt = Date.now();
      const acked = this.pending!;
      this.pending = undefined;
      this.store.durable().then(
        () => send(acked),
        (error: Error) => this.events.emit('error', new SyncClientError('apply_failed', `storing the replica failed, so ${acked} was not acked: ${error.message}`, { cause: error })),
      );
    }, Math.max(this.delayMs, this.ackedAt + ACK_INTERVAL_MS - Date.now()));
  }

  /** Drops the planned ack (its socket is gone; the next session resumes from the stored position). */
  cancel(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
