'use strict';
// @ts-check
/**
 * `node bench/inprocess.js [--build <dir>]... [--rounds 15] [--requests 10000] [--no-respond] [--metrics]`
 *
 * The server's own work per GET /user, without sockets: each build's app (dist/ by default; a
 * copy of dist/ with a middleware left out, say, for what it costs) and a bare Koa route, in one
 * process, on contexts built from Node's own IncomingMessage/ServerResponse, through Koa's
 * handleRequest (the answer is built and ended; --no-respond runs the middleware alone). Rounds
 * are interleaved; it prints the median µs per request and the difference from bare Koa. Far
 * steadier than the HTTP figures on a shared machine, and blind to what only load shows
 * (garbage with many requests in flight, the socket write): see bench/NOTES.md. `--metrics` adds
 * each build again with Prometheus metrics on (as METRICS_PORT turns them on), to see their cost.
 */
const path = require('node:path');
const { Writable } = require('node:stream');
const { IncomingMessage, ServerResponse } = require('node:http');
const Koa = require('koa');
const compose = require('koa-compose');
const { Router } = require('@koa/router');

const ROOT = path.join(__dirname, '..');

/** @param {string} dist @param {boolean} [withMetrics] */
async function buildServer(dist, withMetrics = false) {
  const load = (/** @type {string} */ m) => require(path.join(path.resolve(dist), m));
  const config = load('config').loadConfig({ NODE_ENV: 'production', JWT_SECRET: 'in-process-bench-secret-of-40-characters', DATABASE_URL: 'sqlite::memory:' });
  const store = await load('store/open-store').openStore(config.databaseUrl);
  const passwords = await load('services/passwords').createPasswords(config.argon2);
  // The log lines are made in full and dropped, as the HTTP bench drops them.
  const logger = load('http/request-log').createLogger(config.logLevel, new Writable({ write: (_c, _e, cb) => cb() }));
  const metrics = withMetrics ? load('services/metrics').createMetrics({ defaultMetrics: true }) : undefined;
  const app = load('app').createApp({ config, store, passwords, logger, ...(metrics ? { metrics } : {}) });
  // As at start-up: the signing keys are loaded (the first one made) before the first token.
  await app.services.keyring.sync();
  await app.services.auth.addUser('bench', 'in-process-bench-password', 'admin');
  const pair = await app.services.auth.login('bench', 'in-process-bench-password', { ip: '127.0.0.1', userAgent: null });
  return { app, token: pair.accessToken, close: () => store.close() };
}

function buildBare() {
  const app = new Koa();
  const router = new Router();
  const body = { id: 'abcdefghijklmnopqrstuv', name: 'bench', role: 'admin' };
  router.get('/user', (/** @type {import('koa').Context} */ ctx) => {
    ctx.body = body;
  });
  app.use(router.routes());
  return { app, token: 'unused', close: async () => undefined };
}

async function main() {
  const args = process.argv.slice(2);
  const opt = (/** @type {string} */ name, /** @type {string} */ fallback) => {
    const i = args.indexOf(`--${name}`);
    return i === -1 ? fallback : String(args[i + 1]);
  };
  const builds = args.flatMap((a, i) => (a === '--build' ? [String(args[i + 1])] : []));
  if (builds.length === 0) builds.push(path.join(ROOT, 'dist'));
  const rounds = Number(opt('rounds', '15'));
  const requests = Number(opt('requests', '10000'));
  const respond = !args.includes('--no-respond');

  /** @type {{ name: string, app: import('koa'), token: string, close: () => Promise<void>, fn?: any }[]} */
  const apps = [{ name: 'bare Koa', ...buildBare() }];
  for (const b of builds) {
    const name = path.relative(process.cwd(), b) || b;
    apps.push({ name, ...(await buildServer(b)) });
    if (args.includes('--metrics')) apps.push({ name: `${name} + metrics`, ...(await buildServer(b, true)) });
  }
  for (const a of apps) a.fn = compose(a.app.middleware);

  const one = async (/** @type {(typeof apps)[number]} */ a) => {
    const req = new IncomingMessage(/** @type {any} */ (null));
    req.method = 'GET';
    req.url = '/user';
    req.headers = { host: '127.0.0.1', authorization: `Bearer ${a.token}` };
    const res = new ServerResponse(req);
    const ctx = a.app.createContext(req, res);
    if (respond) await /** @type {any} */ (a.app).handleRequest(ctx, a.fn);
    else await a.fn(ctx);
    if (ctx.status !== 200) throw new Error(`${a.name}: GET /user answered ${ctx.status}`);
  };
  const run = async (/** @type {(typeof apps)[number]} */ a, /** @type {number} */ n) => {
    const start = process.hrtime.bigint();
    for (let i = 0; i < n; i += 1) await one(a);
    return Number(process.hrtime.bigint() - start) / n / 1000;
  };
  for (const a of apps) await run(a, Math.min(requests, 20_000)); // warm-up
  /** @type {Map<string, number[]>} */
  const times = new Map();
  for (let r = 0; r < rounds; r += 1) {
    for (const a of apps) times.set(a.name, [...(times.get(a.name) ?? []), await run(a, requests)]);
  }
  const median = (/** @type {number[]} */ xs) => [...xs].sort((x, y) => x - y)[xs.length >> 1] ?? NaN;
  const bare = median(times.get('bare Koa') ?? []);
  process.stdout.write(`GET /user in-process, ${respond ? 'with' : 'without'} the answer, ${rounds} rounds of ${requests} (median µs per request)\n`);
  for (const [name, xs] of times) {
    const m = median(xs);
    process.stdout.write(`${name.padEnd(24)} ${m.toFixed(2).padStart(7)} µs  ${name === 'bare Koa' ? '' : `+${(m - bare).toFixed(2)} over bare Koa`}\n`);
  }
  for (const a of apps) await a.close();
}

main().catch((error) => {
  process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
