/**
 * The app server Zero 1.x needs beside zero-cache, minimal: POST /query resolves the named queries to
 * ZQL, POST /mutate runs the mutators against Postgres (postgres.js, as Zero's docs show). Its own
 * process, like walsync's server in the bench. Usage: zero-api.mts <port> <database url>
 */
import { createServer } from 'node:http';
import { mustGetMutator, mustGetQuery } from '@rocicorp/zero';
import { handleMutateRequest, handleQueryRequest } from '@rocicorp/zero/server';
import { zeroPostgresJS } from '@rocicorp/zero/server/adapters/postgresjs';
import { mutators, queries, schema } from './zero-app.mts';

const [port, databaseUrl] = process.argv.slice(2);
if (!port || !databaseUrl) throw new Error('usage: zero-api.mts <port> <database url>');
const database = zeroPostgresJS(schema, databaseUrl);

const server = createServer(async (req, res) => {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const url = new URL(req.url ?? '/', 'http://127.0.0.1');
  const body = JSON.parse(Buffer.concat(chunks).toString('utf8') || 'null');
  // The bench's clients send their user id as the token (zero-cache forwards it): no JWT on this side.
  const userID = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1] ?? null;
  try {
    let answer: unknown;
    if (url.pathname === '/query') {
      answer = await handleQueryRequest({
        handler: (name, args) => (mustGetQuery(queries, name) as any).fn({ args, ctx: undefined }),
        schema,
        userID,
        query: url.searchParams,
        body,
      });
    } else if (url.pathname === '/mutate') {
      answer = await handleMutateRequest({
        dbProvider: database,
        handler: (transact, mutation) =>
          transact((tx, name, args) => (mustGetMutator(mutators, name) as any).fn({ tx, args, ctx: undefined })),
        userID,
        query: url.searchParams,
        body,
      });
    } else {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer));
  } catch (error) {
    res.writeHead(500).end(String(error));
  }
});
server.listen(Number(port), '127.0.0.1', () => process.send?.('listening'));
