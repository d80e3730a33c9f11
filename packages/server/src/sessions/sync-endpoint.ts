import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { CloseCodes, type ExtractedMigration, WRITE_LIMITS, readCatalog, readSchema } from '@walsync/db/server';
import { type WebSocket, WebSocketServer } from 'ws';
import type { ClientStream } from './client-stream';
import { SessionRouter } from './session-router';
import { type SessionDependencies, SyncSession } from './sync-session';

/** How often sessions the feed moved past without anything for them hear their position move (protocol: at most about once a second). */
const IDLE_SWEEP_MS = 1_000;

export interface SyncEndpointOptions {
  /** How long a new connection may take to send hello. */
  handshakeTimeoutMs?: number;
  /** Ping interval; a client that has not answered the previous ping by the next is dropped. */
  heartbeatMs?: number;
}

/**
 * The `/sync` WebSocket endpoint: one SyncSession per connection, heartbeats, and fan-out of the
 * change feed to every live session.
 */
export class SyncEndpoint {
  private readonly sockets = new WebSocketServer({ noServer: true, maxPayload: WRITE_LIMITS.maxBatchBytes + 64 * 1024 });
  private readonly sessions = new Set<SyncSession>();
  private readonly alive = new WeakSet<WebSocket>();
  private heartbeat: NodeJS.Timeout | undefined;
  private readonly idleSweep: NodeJS.Timeout;
  private readonly router: SessionRouter<ClientStream>;

  constructor(
    private readonly deps: Omit<SessionDependencies, 'migrations' | 'reverted' | 'router'>,
    private readonly options: SyncEndpointOptions = {},
  ) {
    this.router = new SessionRouter(deps.subscriptions);
    // Each new change wakes the sessions it may concern (looked up), not every session.
    deps.feed.on('advanced', (_tail, entries) => this.router.route(entries));
    this.idleSweep = setInterval(() => {
      for (const { stream } of this.sessions) if (stream.behind) stream.pump();
    }, IDLE_SWEEP_MS);
  }

  get clients(): number {
    return this.sessions.size;
  }

  attach(server: Server): void {
    server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => {
      if (new URL(request.url ?? '/', 'http://localhost').pathname !== '/sync') {
        socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n');
        return;
      }
      this.sockets.handleUpgrade(request, socket, head, (ws) => this.accept(ws));
    });
    this.heartbeat = setInterval(() => {
      for (const ws of this.sockets.clients) {
        if (!this.alive.has(ws)) {
          ws.terminate();
          continue;
        }
        this.alive.delete(ws);
        ws.ping();
      }
    }, this.options.heartbeatMs ?? 15_000);
  }

  private accept(ws: WebSocket): void {
    this.alive.add(ws);
    ws.on('pong', () => this.alive.add(ws));
    ws.on('error', (error) => this.deps.log.debug({ err: error }, 'sync socket error'));
    const session = new SyncSession(ws, {
      ...this.deps,
      router: this.router,
      migrations: () => this.migrations(),
      reverted: async () => (await readSchema(this.deps.pool))?.reverted ?? [],
    });
    this.sessions.add(session);
    ws.on('close', () => this.sessions.delete(session));
    const timer = setTimeout(() => {
      if (!session.userId) session.close(CloseCodes.handshakeTimeout, 'no hello received in time');
    }, this.options.handshakeTimeoutMs ?? 10_000);
    ws.on('close', () => clearTimeout(timer));
  }

  /** The server's catalog: the migrations it applied, as clients apply them. */
  private async migrations(): Promise<ExtractedMigration[]> {
    return readCatalog(this.deps.pool);
  }

  /** A migration ran (see SyncSession.schemaMoved): every connected client is offered it. */
  schemaMoved(reloaded: Promise<void>): void {
    for (const session of this.sessions) session.schemaMoved(reloaded);
  }

  async close(): Promise<void> {
    clearInterval(this.heartbeat);
    clearInterval(this.idleSweep);
    for (const session of this.sessions) session.close(CloseCodes.goingAway, 'the server is shutting down');
    await new Promise<void>((resolve) => this.sockets.close(() => resolve()));
  }
}
