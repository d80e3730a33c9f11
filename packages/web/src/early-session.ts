/**
 * A new replica's first session, opened while the replica itself is still being made (PGlite's
 * start from the template: half a second in Node, more in a browser). A new replica's hello is known
 * before it opens — no position, the template's schema version, the client id it will store, the
 * subscriptions it was made with — so the server can read the snapshot meanwhile. What the server
 * sends is kept, in order, until the SyncConnection takes the socket over (see `SyncConnection`'s
 * `early` option): it compares this hello with the one the opened replica makes, and starts over
 * on a new socket when they differ, before anything of this one is applied.
 */
import { PROTOCOL_VERSION, type SubscriptionRef, checkSubscription, schemaVersion, subscriptionDefinitions } from '@walsync/db/browser';
import type { SocketFactory, SocketLike } from './endpoint';

export interface HelloFields {
  token: string;
  clientId: string;
  schemaVersion: string | null;
  position: string | null;
  subscriptions?: SubscriptionRef[];
  workspaces?: string[] | null;
}

/** The hello a client sends (protocol.md), the same text for the same fields. */
export function helloMessage({ token, clientId, schemaVersion, position, subscriptions, workspaces }: HelloFields): string {
  const hello = { type: 'hello', protocol: PROTOCOL_VERSION, token, clientId, schemaVersion, position, ...(subscriptions ? { subscriptions } : {}) };
  return JSON.stringify(workspaces === null || workspaces === undefined || position === null ? hello : { ...hello, workspaces });
}

type SocketEvent = { type: 'open' } | { type: 'message'; data: unknown } | { type: 'close'; code: number; reason: string };

export class EarlySession {
  readonly socket: SocketLike;
  /** The hello this session says (or said) once its socket opens. */
  readonly hello: string;
  private events: SocketEvent[] = [];
  private said = false;
  /** A connection took the socket over, or it was abandoned. */
  private taken = false;

  constructor(openSocket: SocketFactory, url: string, hello: HelloFields) {
    this.hello = helloMessage(hello);
    this.socket = openSocket(url);
    this.socket.onopen = () => {
      this.sayHello();
      this.events.push({ type: 'open' });
    };
    this.socket.onmessage = ({ data }) => this.events.push({ type: 'message', data });
    this.socket.onerror = () => undefined;
    this.socket.onclose = ({ code, reason }) => this.events.push({ type: 'close', code, reason });
  }

  /** Sends the hello, once (its socket is open). */
  sayHello(): void {
    if (this.said) return;
    this.said = true;
    this.socket.send(this.hello);
  }

  /** Gives what the socket delivered so far to the handlers now set on it, in order; later events go to them directly. */
  replay(): void {
    this.taken = true;
    const events = this.events;
    this.events = [];
    for (const event of events) {
      if (event.type === 'open') this.socket.onopen?.(undefined);
      else if (event.type === 'message') this.socket.onmessage?.({ data: event.data });
      else this.socket.onclose?.({ code: event.code, reason: event.reason });
    }
  }

  /** Not taken over (the replica could not be opened, the client closed first): the server hears the socket close. */
  abandon(): void {
    if (this.taken) return;
    this.taken = true;
    this.socket.onopen = this.socket.onmessage = this.socket.onclose = null;
    this.socket.close();
  }
}

/**
 * The hello of a replica about to be made from this build's template (every migration applied, no
 * position), or undefined when one of `subscriptions` is not this build's (the client's start refuses it).
 */
export function newReplicaHello(token: string, clientId: string, subscriptions: SubscriptionRef[] | undefined): HelloFields | undefined {
  const checked = subscriptions?.map((ref) => checkSubscription(subscriptionDefinitions, ref));
  if (checked?.some((each) => !each.ok)) return undefined;
  return { token, clientId, schemaVersion, position: null, subscriptions: checked?.map((each) => (each as Extract<typeof each, { ok: true }>).ref) };
}
