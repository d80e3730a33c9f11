import { existsSync } from 'node:fs';
import path from 'node:path';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';
import type pg from 'pg';
import { formatIssues } from '@walsync/db/server';
import { z } from 'zod';
import type { Tokens } from '../auth/tokens';

export interface DemoAppOptions {
  /**
   * The built app and what it loads, first match wins: the demo (packages/demo/dist: index.html,
   * app.js) and the client (packages/web/dist: worker.js, PGlite's files, the replica template).
   */
  staticDirs: string[];
  /** Whether `POST /dev/login` issues tokens; never in production. */
  devLogin: boolean;
}

const LoginSchema = z.strictObject({ email: z.string().trim().toLowerCase().email().max(320) });
const errorBody = (code: string, message: string) => ({ error: { code, message } });

/**
 * The demo web app at `/`, and a development-only login: `POST /dev/login {"email"}` answers a JWT
 * for that app_user, so `/?user=alice@demo.test` signs in directly. Refused when NODE_ENV=production.
 */
export async function registerDemoApp(app: FastifyInstance, deps: { pool: pg.Pool; tokens: Tokens }, options: DemoAppOptions): Promise<void> {
  const missing = options.staticDirs.find((dir) => !existsSync(dir)) ?? (options.staticDirs.some((dir) => existsSync(path.join(dir, 'index.html'))) ? undefined : options.staticDirs[0]);
  if (missing !== undefined) throw new Error(`the demo app is not built (${missing} is missing or has no index.html); run yarn build`);
  await app.register(fastifyStatic, { root: options.staticDirs, index: 'index.html', cacheControl: false, etag: true, lastModified: true });

  app.get('/dev/users', async (_request, reply) => {
    if (!options.devLogin) return reply.status(403).send(errorBody('dev_login_disabled', 'the development login is disabled in production'));
    const users = await deps.pool.query(`SELECT email, name FROM app_user ORDER BY email LIMIT 100`);
    return { users: users.rows };
  });

  app.post('/dev/login', async (request, reply) => {
    if (!options.devLogin) return reply.status(403).send(errorBody('dev_login_disabled', 'the development login is disabled in production'));
    const parsed = LoginSchema.safeParse(request.body);
    if (!parsed.success) return reply.status(400).send(errorBody('invalid_request', `send {"email": "<address>"}: ${formatIssues(parsed.error, 'email')}`));
    const user = await deps.pool.query<{ id: string; email: string; name: string }>(`SELECT id, email, name FROM app_user WHERE email = $1`, [parsed.data.email]);
    if (!user.rows[0]) return reply.status(404).send(errorBody('unknown_user', `no user ${parsed.data.email}`));
    return { token: await deps.tokens.issue(user.rows[0].id), user: user.rows[0] };
  });
}
