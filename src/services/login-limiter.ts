import type { Redis } from 'ioredis';
import { type RateLimiterAbstract, RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import { AuthError } from '../errors';

/**
 * Brute-force protection for logins. Failures are counted per client address and per
 * (account name, client address): an attacker elsewhere cannot lock the real user out, and every
 * count empties when its window passes, so no lockout outlasts it.
 */
export interface LoginLimiter {
  /** Throws `rate_limited` (with Retry-After) when either count is used up. */
  check(ip: string, nameKey: string): Promise<void>;
  /** Counts a failed attempt; throws `rate_limited` when it used up a count. */
  fail(ip: string, nameKey: string): Promise<void>;
  /** Forgets the failures of this name from this address. */
  succeed(ip: string, nameKey: string): Promise<void>;
  /** Counts one attempt against the address alone (sign-up). */
  hit(ip: string): Promise<void>;
}

export interface LoginLimits {
  ipPoints: number;
  namePoints: number;
  /** Seconds. */
  window: number;
}

const limited = (res: RateLimiterRes) => {
  const seconds = Math.max(1, Math.ceil(res.msBeforeNext / 1000));
  return new AuthError('rate_limited', `Too many attempts. Try again in ${seconds} seconds.`, {
    headers: { 'Retry-After': String(seconds) },
  });
};

function rethrow(error: unknown): never {
  if (error instanceof RateLimiterRes) throw limited(error);
  throw error;
}

export interface LoginLimiterOptions {
  /** Starts every counter's key, so deployments (or tests) can share one Redis. Default `login`. */
  keyPrefix?: string;
}

/**
 * In memory (one process) by default; pass a Redis client (made with `enableOfflineQueue: false`)
 * to share counts between instances. While Redis does not answer, counts fall back to this
 * process's memory: logins go on, still limited, instead of failing with a 500.
 */
export function createLoginLimiter(limits: LoginLimits, redis?: Redis, opts: LoginLimiterOptions = {}): LoginLimiter {
  const prefix = opts.keyPrefix ?? 'login';
  const make = (name: string, points: number): RateLimiterAbstract => {
    const keyPrefix = `${prefix}_${name}`;
    const memory = new RateLimiterMemory({ keyPrefix, points, duration: limits.window });
    if (!redis) return memory;
    return new RateLimiterRedis({
      storeClient: redis,
      keyPrefix,
      points,
      duration: limits.window,
      useRedisPackage: false,
      // Without this a client with an offline queue would hold every login until Redis is back.
      rejectIfRedisNotReady: true,
      insuranceLimiter: memory,
    });
  };
  const byIp = make('fail_ip', limits.ipPoints);
  const byName = make('fail_name_ip', limits.namePoints);
  const nameKeyOf = (ip: string, nameKey: string) => `${nameKey}\u0000${ip}`;

  return {
    async check(ip, nameKey) {
      const [ipRes, nameRes] = await Promise.all([byIp.get(ip), byName.get(nameKeyOf(ip, nameKey))]);
      if (ipRes && ipRes.consumedPoints >= limits.ipPoints) throw limited(ipRes);
      if (nameRes && nameRes.consumedPoints >= limits.namePoints) throw limited(nameRes);
    },
    async fail(ip, nameKey) {
      await Promise.all([byIp.consume(ip), byName.consume(nameKeyOf(ip, nameKey))]).catch(rethrow);
    },
    async succeed(ip, nameKey) {
      await byName.delete(nameKeyOf(ip, nameKey));
    },
    async hit(ip) {
      await byIp.consume(ip).catch(rethrow);
    },
  };
}
