import type { Redis, RedisOptions } from 'ioredis';
import type { Revocation } from '../store/store';
import type { Health } from './health';
import type { RevocationBus } from './revocations';
import type { KeyChangeBus } from './signing-keys';

export const REVOCATION_CHANNEL = 'auth:revocations';
/** Where "the signing keys changed" goes; the message carries nothing: receivers reload the keys. */
export const KEY_CHANGE_CHANNEL = 'auth:signing-keys';

/** How the instance speaks of itself while the subscription is down. */
const DEGRADED = 'revocations from other instances arrive by polling only';

/**
 * Options for every Redis connection of the server: a dead or frozen Redis costs a request at
 * most `timeoutMs`, never the whole outage, and reconnection goes on in the background.
 */
export function redisOptions(timeoutMs: number): RedisOptions {
  return {
    connectTimeout: timeoutMs,
    commandTimeout: timeoutMs,
    maxRetriesPerRequest: 1,
    // A command sent while disconnected fails at once instead of waiting in a queue for Redis.
    enableOfflineQueue: false,
    retryStrategy: (times: number) => Math.min(100 * 2 ** Math.min(times, 5), 2_000),
    lazyConnect: false,
  };
}

export interface RedisBusOptions {
  channel?: string;
  /** Where the subscription's state shows (`redis`: up or degraded), and so in /readyz and the log. */
  health?: Health;
  /** How often the subscription is checked with a PING (a frozen Redis keeps its sockets open). */
  pingIntervalMs?: number;
}

/**
 * A {@link RevocationBus} over Redis pub/sub. It needs two connections: one in subscriber mode
 * can do nothing else. The subscription is made each time the subscriber connection is ready
 * (make it with `autoResubscribe: false`), so it survives reconnects; its state is kept in
 * `health`. A PING on the subscriber every `pingIntervalMs` notices a Redis that stopped
 * answering without closing its sockets, and reconnects. Messages that do not parse are ignored:
 * the store poll still catches up.
 */
export function createRedisRevocationBus(publisher: Redis, subscriber: Redis, opts: RedisBusOptions = {}): RevocationBus & { close(): void } {
  const channel = opts.channel ?? REVOCATION_CHANNEL;
  const { health } = opts;
  let watchdog: NodeJS.Timeout | undefined;
  let closed = false;
  return {
    publish(r) {
      // Fire and forget: a lost message costs at most one poll interval of lag.
      publisher.publish(channel, JSON.stringify(r)).catch(() => undefined);
    },
    subscribe(listener, onResubscribed) {
      let retry: NodeJS.Timeout | undefined;
      const subscribeNow = async () => {
        clearTimeout(retry);
        try {
          await subscriber.subscribe(channel);
          health?.set('redis', 'up');
          // Whatever was published while the subscription was down is gone: catch up.
          onResubscribed?.();
        } catch (error) {
          if (closed) return;
          health?.set('redis', 'degraded', `the subscription failed (${(error as Error)?.message ?? 'unknown'}): ${DEGRADED}`);
          retry = setTimeout(() => {
            if (subscriber.status === 'ready') void subscribeNow();
          }, 1_000);
          retry.unref();
        }
      };
      subscriber.on('ready', () => void subscribeNow());
      subscriber.on('close', () => {
        if (!closed) health?.set('redis', 'degraded', `Redis is not reachable: ${DEGRADED}`);
      });
      subscriber.on('error', () => undefined); // 'close' says it once; ioredis retries by itself
      subscriber.on('message', (ch: string, message: string) => {
        if (ch !== channel) return;
        try {
          const r = JSON.parse(message) as Partial<Revocation>;
          if (typeof r.sessionId === 'string' && typeof r.revokedAt === 'number') listener({ sessionId: r.sessionId, revokedAt: r.revokedAt });
        } catch {
          /* not ours */
        }
      });
      if (subscriber.status === 'ready') void subscribeNow();
      else health?.set('redis', 'degraded', `connecting to Redis: ${DEGRADED}`);
      if (opts.pingIntervalMs) {
        watchdog = setInterval(() => {
          if (subscriber.status !== 'ready') return;
          subscriber.ping().catch(() => {
            if (closed || subscriber.status !== 'ready') return;
            health?.set('redis', 'degraded', `Redis does not answer: ${DEGRADED}`);
            // Reconnect: the next 'ready' subscribes again.
            subscriber.disconnect(true);
          });
        }, opts.pingIntervalMs);
        watchdog.unref();
      }
    },
    close() {
      closed = true;
      clearInterval(watchdog);
    },
  };
}

/**
 * For processes that revoke but do not serve (the users CLI): publishes each revocation on the
 * bus so running servers refuse the session at once, and waits (bounded) for the messages to go
 * out before the process ends. Without Redis the servers still find the revocations by polling.
 */
export function createRevocationPublisher(url: string, timeoutMs: number, channel = REVOCATION_CHANNEL) {
  const { Redis } = require('ioredis') as typeof import('ioredis');
  const redis = new Redis(url, { ...redisOptions(timeoutMs), enableOfflineQueue: true, lazyConnect: true, retryStrategy: () => null });
  redis.on('error', () => undefined);
  const pending: Promise<unknown>[] = [];
  return {
    add(sessionId: string, revokedAt: number) {
      pending.push(redis.publish(channel, JSON.stringify({ sessionId, revokedAt })).catch(() => undefined));
    },
    /** Sends what is queued (within `timeoutMs`), then closes. Resolves with how many went out. */
    async close(): Promise<number> {
      if (pending.length === 0) {
        redis.disconnect();
        return 0;
      }
      // The first publish opened the connection (lazyConnect); each is bounded by commandTimeout.
      const sent = await Promise.race([
        Promise.all(pending).then((r) => r.filter((x) => typeof x === 'number').length),
        new Promise<number>((resolve) => setTimeout(() => resolve(0), timeoutMs * 2).unref()),
      ]);
      redis.disconnect();
      return sent;
    },
  };
}

/**
 * A {@link KeyChangeBus} over the revocation bus's two connections (a connection in subscriber
 * mode may hold several channels): a rotation, retirement or removal made anywhere makes every
 * instance reload its keys at once. The subscription is made again on every 'ready', and each
 * time the listener is told to catch up (the keys poll is the safety net meanwhile). Its health
 * is the revocation bus's.
 */
export function createRedisKeyChangeBus(publisher: Redis, subscriber: Redis, channel = KEY_CHANGE_CHANNEL): KeyChangeBus {
  return {
    publish() {
      publisher.publish(channel, '1').catch(() => undefined);
    },
    subscribe(listener, onResubscribed) {
      const subscribeNow = () => {
        subscriber.subscribe(channel).then(
          () => onResubscribed?.(),
          () => undefined,
        );
      };
      subscriber.on('ready', subscribeNow);
      subscriber.on('message', (ch: string) => {
        if (ch === channel) listener();
      });
      if (subscriber.status === 'ready') subscribeNow();
    },
  };
}

/** For the keys CLI: tells running servers that the keys changed, and waits (bounded) for it to go out. */
export async function publishKeyChange(url: string, timeoutMs: number, channel = KEY_CHANGE_CHANNEL): Promise<boolean> {
  const { Redis } = require('ioredis') as typeof import('ioredis');
  const redis = new Redis(url, { ...redisOptions(timeoutMs), enableOfflineQueue: true, lazyConnect: true, retryStrategy: () => null });
  redis.on('error', () => undefined);
  try {
    const sent = await Promise.race([
      redis.publish(channel, '1').then(
        () => true,
        () => false,
      ),
      new Promise<boolean>((resolve) => setTimeout(() => resolve(false), timeoutMs * 2).unref()),
    ]);
    return sent;
  } finally {
    redis.disconnect();
  }
}
