import type { ServerMessage } from '@walsync/db/server';
import { WebSocket } from 'ws';

type Message = ServerMessage & Record<string, any>;

/**
 * A client that speaks the sync protocol by hand: no client library, just a WebSocket, for tests
 * that check the wire.
 */
export class BareClient {
  readonly messages: Message[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  /** How the socket closed (the server or the test closing it), once it did. */
  private closedWith: { code: number; reason: string } | undefined;
  private cursor = 0;
  private waiters: Array<() => void> = [];

  private constructor(readonly socket: WebSocket) {
    socket.on('message', (data) => {
      this.messages.push(JSON.parse(data.toString()));
      for (const wake of this.waiters.splice(0)) wake();
    });
    this.closed = new Promise((resolve) =>
      socket.on('close', (code, reason) => {
        this.closedWith = { code, reason: reason.toString() };
        resolve(this.closedWith);
        for (const wake of this.waiters.splice(0)) wake();
      }),
    );
  }

  static async connect(httpUrl: string): Promise<BareClient> {
    const socket = new WebSocket(`${httpUrl.replace(/^http/, 'ws')}/sync`);
    await new Promise((resolve, reject) => {
      socket.once('open', resolve);
      socket.once('error', reject);
    });
    return new BareClient(socket);
  }

  /** How the socket stands, for a failing test's message: open, or closed with which code and reason. */
  describeSocket(): string {
    return this.closedWith ? `closed (${this.closedWith.code} ${this.closedWith.reason})` : `open (readyState ${this.socket.readyState})`;
  }

  send(message: unknown): void {
    this.socket.send(typeof message === 'string' ? message : JSON.stringify(message));
  }

  hello(fields: { token: string; clientId: string; schemaVersion?: string | null; position?: string | null; workspaces?: string[]; echoThrough?: string }): void {
    this.send({ type: 'hello', protocol: 1, schemaVersion: null, position: null, ...fields });
  }

  /** The next message not yet taken that matches, waiting up to `timeoutMs`. */
  async next<T extends Message['type']>(type?: T | ((message: Message) => boolean), timeoutMs = 10_000): Promise<Extract<Message, { type: T }>> {
    const matches = (message: Message) => (type === undefined ? true : typeof type === 'function' ? type(message) : message.type === type);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      while (this.cursor < this.messages.length) {
        const message = this.messages[this.cursor++]!;
        if (matches(message)) return message as never;
      }
      if (this.socket.readyState === WebSocket.CLOSED) {
        throw new Error(`the socket was ${this.describeSocket()} while waiting for ${String(type)}; last messages: ${JSON.stringify(this.messages.slice(-3)).slice(0, 800)}`);
      }
      const remaining = deadline - Date.now();
      if (remaining <= 0) throw new Error(`no ${String(type ?? 'message')} within ${timeoutMs} ms; got ${JSON.stringify(this.messages.slice(-5)).slice(0, 800)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, remaining);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Reads a whole snapshot (after its snapshot_start): rows by table and the end position. */
  async snapshot(): Promise<{ start: Extract<Message, { type: 'snapshot_start' }>; rows: Record<string, any[]>; end: Extract<Message, { type: 'snapshot_end' }> }> {
    const start = await this.next('snapshot_start');
    const rows: Record<string, any[]> = {};
    for (;;) {
      const message = await this.next((each) => each.type === 'snapshot_batch' || each.type === 'snapshot_end');
      if (message.type === 'snapshot_end') return { start, rows, end: message };
      (rows[message.table] ??= []).push(...message.rows);
    }
  }

  close(): void {
    this.socket.close();
  }
}
