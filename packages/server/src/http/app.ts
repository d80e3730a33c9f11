import { PROTOCOL_VERSION, WRITE_LIMITS } from '@walsync/db/server';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest, LogController } from 'fastify';
import type pg from 'pg';
import type { Logger } from 'pino';
import { AuthenticationError, type Tokens } from '../auth/tokens';
import type { Metrics } from '../metrics';
import type { Capture } from '../replication/capture';
import { RowsReadError, type RowsReader } from '../sessions/rows-read';
import { WriteRequestError, type WriteService } from '../writes/write-service';
import { readHealth } from './health';

export interface HttpDependencies {
  pool: pg.Pool;
  capture: Capture;
  writes: WriteService;
  rows: RowsReader;
  tokens: Tokens;
  metrics: Metrics;
  slotName: string;
  log: Logger;
  clients: () => number;
}

/** Every error answer has this shape. */
const errorBody = (code: string, message: string) => ({ error: { code, message } });

/**
 * The HTTP surface: `GET /health`, `GET /metrics`, `POST /changes` (the write API) and `POST /rows`
 * (a one-off read for a first paint), both with a bearer JWT.
 */
export function buildHttpApp(deps: HttpDependencies): FastifyInstance {
  const app = Fastify({
    loggerInstance: deps.log as FastifyBaseLogger,
    bodyLimit: WRITE_LIMITS.maxBatchBytes,
    logController: new LogController({ disableRequestLogging: true }),
  });

  // The API speaks JSON only.
  app.removeContentTypeParser('text/plain');

  app.setErrorHandler((error: Error & { statusCode?: number; code?: string }, request, reply) => {
    if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return reply.status(413).send(errorBody('too_large', `the request body may take at most ${WRITE_LIMITS.maxBatchBytes} bytes`));
    if (error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return reply.status(415).send(errorBody('unsupported_media_type', 'send the batch as application/json'));
    if (error.statusCode && error.statusCode < 500) return reply.status(error.statusCode).send(errorBody('invalid_request', error.message));
    request.log.error({ err: error }, 'request failed');
    return reply.status(500).send(errorBody('internal', 'the server could not handle the request; nothing was written'));
  });
  app.setNotFoundHandler((request, reply) => reply.status(404).send(errorBody('not_found', `no route ${request.method} ${request.url}`)));

  app.get('/health', async () => readHealth(deps.pool, deps.capture, deps.slotName, deps.clients()));

  app.get('/metrics', async (_request, reply) => {
    const health = await readHealth(deps.pool, deps.capture, deps.slotName, deps.clients());
    if (health.replication.lagBytes !== null) deps.metrics.replicationLagBytes.set(health.replication.lagBytes);
    return reply.type(deps.metrics.registry.contentType).send(await deps.metrics.registry.metrics());
  });

  /** The user a request's bearer JWT names; undefined once the request was answered 401. */
  const user = async (request: FastifyRequest, reply: FastifyReply): Promise<string | undefined> => {
    try {
      return (await deps.tokens.verify(request.headers.authorization)).userId;
    } catch (error) {
      if (!(error instanceof AuthenticationError)) throw error;
      void reply.status(401).send(errorBody('unauthenticated', error.message));
      return undefined;
    }
  };

  app.post('/changes', async (request, reply) => {
    const userId = await user(request, reply);
    if (userId === undefined) return reply;
    try {
      return await deps.writes.applyBatch(userId, request.body);
    } catch (error) {
      if (error instanceof WriteRequestError) return reply.status({ too_large: 413, forbidden_client: 403, invalid_batch: 400 }[error.code]).send(errorBody(error.code, error.message));
      throw error;
    }
  });

  app.post('/rows', async (request, reply) => {
    const userId = await user(request, reply);
    if (userId === undefined) return reply;
    try {
      const answer = await deps.rows.read(userId, request.body, () => request.raw.socket.destroyed);
      if (answer === undefined) return reply;
      return reply.type('application/json').send(answer);
    } catch (error) {
      if (error instanceof RowsReadError) {
        const status = { invalid_request: 400, unknown_subscription: 400, invalid_params: 400, forbidden: 403, too_large: 413 }[error.code];
        return reply.status(status).send(errorBody(error.code, error.message));
      }
      throw error;
    }
  });

  // `/sync` is a WebSocket (the upgrade never reaches these routes). A plain GET says so, and says
  // this is a walsync server: a client whose socket failed to open asks here whether its URL is
  // wrong (anything else answers) or the server is only away (nothing answers). Any origin may read it.
  app.get('/sync', async (_request, reply) =>
    reply
      .status(426)
      .header('upgrade', 'websocket')
      .header('access-control-allow-origin', '*')
      .send({ walsync: { protocol: PROTOCOL_VERSION }, error: { code: 'upgrade_required', message: 'GET /sync is the walsync WebSocket endpoint; connect with a WebSocket' } }),
  );

  return app;
}
