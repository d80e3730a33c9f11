import { PROTOCOL_VERSION } from '@walsync/db/browser';
import type { SocketFactory, SocketLike, SyncEndpoint } from './endpoint';

/**
 * What a hello says about the replica (everything but the protocol and the token): its client id,
 * schema version, position, workspaces and ready subscriptions. Kept beside the replica when it
 * closes, so the next start can say hello while PGlite still starts.
 */
export type HelloFields = Record<string, unknown> & { clientId: string };

/**
 * A session opened before the replica: the socket, and the hello it sent from the fields the replica
 * had when it last closed. Until the connection takes it over, what the server sends is only kept.
 * The connection uses it only when the replica, once open, would say the very same hello; otherwise
 * it closes it and says its own (nothing the early socket brought is applied).
 */
export class EarlyHello {
  readonly messages: unknown[] = [];
  opened = false;
  closed = false;
  readonly socket: SocketLike;

  constructor(openSocket: SocketFactory, endpoint: SyncEndpoint, token: string, readonly fields: HelloFields) {
    this.socket = openSocket(endpoint.socketUrl);
    this.socket.onopen = () => {
      this.opened = true;
      this.socket.send(JSON.stringify(helloMessage(token, fields)));
    };
    this.socket.onmessage = ({ data }) => this.messages.push(data);
    this.socket.onerror = () => undefined;
    this.socket.onclose = () => {
      this.closed = true;
    };
  }

  /** Whether the replica's own hello is the one this socket sent (and the socket is still there to take over). */
  matches(fields: HelloFields): boolean {
    return !this.closed && JSON.stringify(fields) === JSON.stringify(this.fields);
  }

  discard(): void {
    this.socket.onopen = this.socket.onmessage = this.socket.onclose = null;
    if (this.socket.terminate) this.socket.terminate();
    else this.socket.close();
  }
}

export function helloMessage(token: string, fields: HelloFields): Record<string, unknown> {
  return { type: 'hello', protocol: PROTOCOL_VERSION, token, ...fields };
}

/** Reads fields saved by `HelloFields` from untrusted storage: anything else is no hint. */
export function parseHelloFields(text: string): HelloFields | undefined {
  try {
    const fields = JSON.parse(text) as unknown;
    if (typeof fields !== 'object' || fields === null || Array.isArray(fields)) return undefined;
    const { clientId, position } = fields as Record<string, unknown>;
    if (typeof clientId !== 'string' || typeof position !== 'string') return undefined;
    return fields as HelloFields;
  } catch {
    return undefined;
  }
}
