'use strict';
// @ts-check
/**
 * The baseline of the benchmark: Koa and @koa/router with one route, GET /user, answering the
 * JSON the real server answers for the benchmark's user, with no auth, no logging, no headers
 * middleware. The server's GET /user is compared with this route in the same run.
 *
 * Env: PORT (0 for any), BENCH_BODY (the JSON to answer).
 */
const { Router } = require('@koa/router');
const Koa = require('koa');

const body = JSON.parse(process.env['BENCH_BODY'] ?? '{"id":"0","name":"bench","role":"admin"}');
const app = new Koa();
const router = new Router();
router.get('/user', (/** @type {import('koa').Context} */ ctx) => {
  ctx.body = body;
});
app.use(router.routes());

const server = app.listen(Number(process.env['PORT'] ?? 0), '127.0.0.1', () => {
  const address = server.address();
  // The runner reads the port from this line.
  process.stdout.write(`${JSON.stringify({ listening: typeof address === 'object' && address ? address.port : null })}\n`);
});
server.keepAliveTimeout = 65_000;
process.on('SIGTERM', () => server.close(() => process.exit(0)));
