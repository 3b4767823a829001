import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import dotenv from 'dotenv';
import type { Redis } from 'ioredis';
import { createApp } from './app';
import { ensureAdmin, resolveSecret } from './bootstrap';
import { ConfigError, loadConfig } from './config';
import { createLogger } from './http/request-log';
import { createLoginLimiter } from './services/login-limiter';
import { createRedisRevocationBus } from './services/redis-revocation-bus';
import { createPasswords } from './services/passwords';
import { openStore } from './store/open-store';

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
  const logger = createLogger(config.logLevel);
  config = resolveSecret(config, logger);
  const store = await openStore(config.databaseUrl);
  let redis: Redis | undefined;
  let subscriber: Redis | undefined;
  if (config.rateLimit.redisUrl !== undefined) {
    // Loaded only when configured: ioredis costs about 7 MB of RSS to a server that never uses it.
    const { Redis } = require('ioredis') as typeof import('ioredis');
    redis = new Redis(config.rateLimit.redisUrl, { enableOfflineQueue: false, lazyConnect: false });
    // A connection in subscriber mode can do nothing else, so the revocation bus has its own.
    subscriber = new Redis(config.rateLimit.redisUrl, { lazyConnect: false });
    subscriber.on('error', () => undefined);
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
  const passwords = await createPasswords(config.argon2);
  const app = createApp({
    config,
    store,
    passwords,
    logger,
    limiter: createLoginLimiter(config.rateLimit, config.rateLimit.store === 'redis' ? redis : undefined),
    ...(redis && subscriber ? { revocationBus: createRedisRevocationBus(redis, subscriber) } : {}),
  });
  const { auth, revocations } = app.services;
  await ensureAdmin(config, store, auth, logger, (line) => process.stdout.write(line));
  await revocations.sync();
  revocations.start(config.revocationPollInterval, (err) => logger.error({ err }, 'revocation sync failed'));
  const prune = setInterval(() => {
    store.pruneSessions(Date.now() - 86_400_000).catch((err) => logger.error({ err }, 'session pruning failed'));
  }, 3_600_000);
  prune.unref();

  let stopping = false;
  const server: Server = app.listen(config.port, config.host);
  server.keepAliveTimeout = 65_000;
  // The responses not yet finished, so that a shutdown can have each close its connection.
  const open = new Set<ServerResponse>();
  server.on('request', (_req: IncomingMessage, res: ServerResponse) => {
    if (stopping) res.setHeader('Connection', 'close');
    open.add(res);
    res.once('close', () => open.delete(res));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  logger.info({ host: config.host, port }, `listening on http://${config.host}:${port}`);

  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down: finishing requests in flight');
    const force = setTimeout(() => {
      logger.error({ timeoutMs: config.shutdownTimeout }, 'requests still in flight at the shutdown bound; exiting');
      process.exit(1);
    }, config.shutdownTimeout);
    force.unref();
    revocations.stop();
    clearInterval(prune);
    // A keep-alive connection stays open after its last answer and would hold server.close()
    // until keepAliveTimeout (then the bound, and exit 1): answers still to come say
    // Connection: close, and connections are closed as soon as they go idle.
    for (const res of open) if (!res.headersSent) res.setHeader('Connection', 'close');
    const sweep = setInterval(() => server.closeIdleConnections(), 100);
    sweep.unref();
    server.close(async () => {
      clearInterval(sweep);
      try {
        await store.close();
        redis?.disconnect();
        subscriber?.disconnect();
        logger.info('stopped');
        process.exit(0);
      } catch (err) {
        logger.error({ err }, 'error while closing the store');
        process.exit(1);
      }
    });
    server.closeIdleConnections();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((error: unknown) => {
  process.stderr.write(`Start-up failed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
