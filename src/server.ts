import dotenv from 'dotenv';
import type { Redis } from 'ioredis';
import { createApp } from './app';
import { ensureAdmin, resolveSecret } from './bootstrap';
import { ConfigError, loadConfig } from './config';
import { type Listening, listen } from './http/listen';
import { metricsEndpoint } from './http/metrics-endpoint';
import { createLogger, prettyDestination, stdoutDestination, wantsPrettyLogs } from './http/request-log';
import { createLoginLimiter } from './services/login-limiter';
import { createHealth } from './services/health';
import type { Metrics } from './services/metrics';
import { createRedisKeyChangeBus, createRedisRevocationBus, redisOptions } from './services/redis-revocation-bus';
import { createPasswords } from './services/passwords';
import { describeStoreError, retryWhileStoreAway, type StoreWait } from './store/availability';

/** How often audit events past `AUDIT_RETENTION` are deleted. */
const AUDIT_PRUNE_INTERVAL_MS = 3_600_000;
import { openStore } from './store/open-store';

/** How often the Redis subscription is checked (a frozen Redis keeps its sockets open). */
const REDIS_PING_INTERVAL_MS = 1_000;

/** Runs the server: the one place that reads process.env, opens the store and listens. */
async function main(): Promise<void> {
  dotenv.config({ quiet: true });
  let config;
  try {
    config = loadConfig(process.env);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
      process.exit(1);
    }
    throw error;
  }
  const pretty = wantsPrettyLogs(config, process.stdout.isTTY === true);
  const prettyOut = pretty ? prettyDestination() : undefined;
  const logger = createLogger(config.logLevel, prettyOut ?? stdoutDestination());
  if (pretty && prettyOut === undefined) logger.warn({ event: 'log_format' }, 'pino-pretty is not installed (a development dependency): logging JSON lines');
  config = resolveSecret(config, logger);
  const health = createHealth(logger);
  const onWait = ({ attempt, delayMs, reason }: StoreWait) =>
    logger.warn({ event: 'store_wait', attempt, delayMs, reason }, `the database cannot be reached yet (${reason}); trying again in ${delayMs} ms`);
  const store = await openStore(config.databaseUrl, {
    timeouts: config.storeTimeouts,
    // An idle pooled connection the database closed: the pool replaces it on demand.
    onBackgroundError: (error) => health.set('store', 'down', describeStoreError(error)),
    onWait,
  });
  health.set('store', 'up');
  let redis: Redis | undefined;
  let subscriber: Redis | undefined;
  if (config.rateLimit.redisUrl !== undefined) {
    // Loaded only when configured: ioredis costs about 7 MB of RSS to a server that never uses it.
    const { Redis } = require('ioredis') as typeof import('ioredis');
    const options = redisOptions(config.redisTimeout);
    redis = new Redis(config.rateLimit.redisUrl, options);
    // A connection in subscriber mode can do nothing else, so the revocation bus has its own; it
    // subscribes again itself after every reconnect (see createRedisRevocationBus).
    subscriber = new Redis(config.rateLimit.redisUrl, { ...options, autoResubscribe: false });
    // ioredis retries forever and emits an error per attempt: say so once per outage.
    let redisDown = false;
    redis.on('error', (err) => {
      if (!redisDown) logger.warn({ err }, 'Redis does not answer: login limits count in this process until it is back');
      redisDown = true;
    });
    redis.on('ready', () => {
      if (redisDown) logger.info('Redis answers again: login limits are shared again');
      redisDown = false;
    });
  }
  const bus = redis && subscriber ? createRedisRevocationBus(redis, subscriber, { health, pingIntervalMs: REDIS_PING_INTERVAL_MS }) : undefined;
  const keyChangeBus = redis && subscriber ? createRedisKeyChangeBus(redis, subscriber) : undefined;
  const passwords = await createPasswords(config.argon2);
  // Loaded only when configured, like ioredis: a server without metrics pays neither prom-client's
  // memory nor a counter per request.
  let metrics: Metrics | undefined;
  if (config.metrics.port !== undefined) {
    const { createMetrics } = require('./services/metrics') as typeof import('./services/metrics');
    metrics = createMetrics({ defaultMetrics: true });
  }
  const app = createApp({
    config,
    store,
    passwords,
    logger,
    health,
    ...(metrics ? { metrics } : {}),
    limiter: createLoginLimiter(config.rateLimit, config.rateLimit.store === 'redis' ? redis : undefined),
    ...(bus ? { revocationBus: bus } : {}),
    ...(keyChangeBus ? { keyChangeBus } : {}),
  });
  const { auth, revocations, keyring } = app.services;
  // The store answered the migration a moment ago, but may have gone since: keep trying within
  // the same start-up bound. Both steps are safe to repeat.
  await retryWhileStoreAway(
    config.storeTimeouts.startup,
    async () => {
      // The signing keys first: loaded, or the first one made (race-free across instances). A
      // key that does not decrypt (another JWT_SECRET) ends start-up here, saying so.
      await keyring.sync();
      await ensureAdmin(config, store, auth, logger, (line) => process.stdout.write(line));
      await revocations.sync();
    },
    { giveUp: (reason) => `The database stopped answering during start-up: ${reason}`, onWait },
  );
  revocations.start(
    config.revocationPollInterval,
    (err) => health.set('store', 'down', `revocation poll failed: ${describeStoreError(err)}`),
    () => health.set('store', 'up'),
  );
  // Keys change rarely and are announced on the bus; the poll (at the revocations' interval)
  // catches what the bus missed and makes the next key when automatic rotation is due.
  keyring.start(config.revocationPollInterval, (err) => logger.error({ err }, 'signing keys could not be reloaded'));
  const prune = setInterval(() => {
    store.pruneSessions(Date.now() - 86_400_000).catch((err) => logger.error({ err }, 'session pruning failed'));
  }, 3_600_000);
  prune.unref();
  await app.services.audit.prune().catch((err: unknown) => logger.error({ err }, 'audit pruning failed'));
  app.services.audit.start(AUDIT_PRUNE_INTERVAL_MS);

  // eslint-disable-next-line @typescript-eslint/no-misused-promises -- Koa's handler ends in .catch(ctx.onerror): its promise never rejects
  const { port, shutdown } = await listen(app.callback(), {
    host: config.host,
    port: config.port,
    limits: config.http,
    shutdownTimeout: config.shutdownTimeout,
    logger,
    onDrain: () => app.services.health.drain(),
  });
  logger.info({ host: config.host, port }, `listening on http://${config.host}:${port}`);
  let metricsListener: Listening | undefined;
  if (metrics && config.metrics.port !== undefined) {
    metricsListener = await listen(metricsEndpoint({ metrics, token: config.metrics.token, logger }), {
      host: config.metrics.host,
      port: config.metrics.port,
      limits: config.http,
      shutdownTimeout: config.shutdownTimeout,
      logger,
    });
    const at = `http://${config.metrics.host}:${metricsListener.port}/metrics`;
    logger.info({ host: config.metrics.host, port: metricsListener.port, tokenRequired: config.metrics.token !== undefined }, `metrics at ${at}`);
    if (config.metrics.token === undefined && !['127.0.0.1', '::1', 'localhost'].includes(config.metrics.host)) {
      logger.warn({ event: 'metrics_open', host: config.metrics.host }, 'the metrics listener is reachable beyond this machine without METRICS_TOKEN');
    }
  }

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down: finishing requests in flight');
    // The metrics listener goes with the main one: a last scrape during the drain still answers.
    const [outcome] = await Promise.all([shutdown(), metricsListener?.shutdown()]);
    if (outcome === 'timeout') {
      logger.error({ timeoutMs: config.shutdownTimeout }, 'requests still in flight at the shutdown bound; exiting');
      process.exit(1);
    }
    // Every request has been answered: only now may revocations stop arriving (requests are
    // still served during SHUTDOWN_DRAIN_DELAY) and the store they used go.
    revocations.stop();
    keyring.stop();
    clearInterval(prune);
    app.services.audit.stop();
    // Writes of refusals still in flight land before the store closes.
    await app.services.audit.idle();
    try {
      await store.close();
      bus?.close();
      redis?.disconnect();
      subscriber?.disconnect();
      logger.info('stopped');
      process.exit(0);
    } catch (err) {
      logger.error({ err }, 'error while closing the store');
      process.exit(1);
    }
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

main().catch((error: unknown) => {
  // The cause chain too: "migration failed" alone does not say that the database refused.
  process.stderr.write(`Start-up failed: ${describeStoreError(error)}\n`);
  process.exit(1);
});
