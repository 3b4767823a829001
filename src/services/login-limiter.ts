import type { Redis } from 'ioredis';
import { type RateLimiterAbstract, RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import { AuthError } from '../errors';

/**
 * Brute-force protection for every operation that checks a password. A point is taken from each
 * count that applies *before* the password is checked, and given back when it was right, so N
 * attempts in flight at once are never more than the counts allow, on one instance or on several
 * sharing Redis. The counts:
 *
 * - per client address (`ipPoints` per window): one address guessing many names;
 * - per (name, address) (`namePoints` per window): one address guessing one name;
 * - per account, from every address (`accountPoints` free failures per window, then one attempt
 *   per growing delay: 1 s, 2 s, 4 s ... up to the window): many addresses guessing one name.
 *   Never a lockout: some attempt always gets through after the delay.
 * - per trusted device (`namePoints` per window): a browser that logged in to this account
 *   before carries a signed device cookie (OWASP's device cookies); it is held back by none of
 *   the counts above, only by its own, so an attack on the account or from the same address
 *   (a shared proxy) does not lock its owner out.
 *
 * Every count empties when its window passes. A refusal is `rate_limited` with an honest
 * `Retry-After`: the time until the count that refused frees a point.
 */
export interface LoginLimiter {
  /**
   * Takes the points of one login attempt, or throws `rate_limited`. `device` is the trusted
   * device id of a valid device cookie issued for this name, if any.
   */
  begin(attempt: { ip: string; nameKey: string; device?: string }): Promise<Attempt>;
  /** Takes the point of one check of a signed-in user's password (password change). */
  beginUser(userId: string): Promise<Attempt>;
  /** Counts one attempt against the address alone (sign-up). */
  hit(ip: string): Promise<void>;
}

/** The outcome of an attempt whose points were taken. Exactly one of these is called. */
export interface Attempt {
  /** The password was right: the attempt's points are given back and the failures forgotten. */
  succeeded(): Promise<void>;
  /** The password was wrong: the points stay taken. */
  failed(): Promise<void>;
  /** The password was never checked (the server was too busy): the points are given back. */
  cancelled(): Promise<void>;
}

export interface LoginLimits {
  ipPoints: number;
  namePoints: number;
  /** Failures of one account from all addresses before each attempt must wait its delay. */
  accountPoints: number;
  /** Seconds. */
  window: number;
}

const limited = (msBeforeNext: number) => {
  const seconds = Math.max(1, Math.ceil(msBeforeNext / 1000));
  return new AuthError('rate_limited', `Too many attempts. Try again in ${seconds} seconds.`, {
    headers: { 'Retry-After': String(seconds) },
  });
};

export interface LoginLimiterOptions {
  /** Starts every counter's key, so deployments (or tests) can share one Redis. Default `login`. */
  keyPrefix?: string;
}

/** A count to take a point from, and how to give it back. */
interface Take {
  limiter: RateLimiterAbstract;
  key: string;
  /** Options of the consume (a custom duration for the account's delay gate). */
  options?: { customDuration: number };
  /** On success: forget the key (failures) rather than give one point back (attempts). */
  forgetOnSuccess: boolean;
}

/**
 * In memory (one process) by default; pass a Redis client (made with `enableOfflineQueue: false`)
 * to share counts between instances. While Redis does not answer, counts fall back to this
 * process's memory: logins go on, still limited, instead of failing with a 500.
 */
export function createLoginLimiter(limits: LoginLimits, redis?: Redis, opts: LoginLimiterOptions = {}): LoginLimiter {
  const prefix = opts.keyPrefix ?? 'login';
  const make = (name: string, points: number, duration = limits.window): RateLimiterAbstract => {
    const keyPrefix = `${prefix}_${name}`;
    const memory = new RateLimiterMemory({ keyPrefix, points, duration });
    if (!redis) return memory;
    return new RateLimiterRedis({
      storeClient: redis,
      keyPrefix,
      points,
      duration,
      useRedisPackage: false,
      // Without this a client with an offline queue would hold every login until Redis is back.
      rejectIfRedisNotReady: true,
      insuranceLimiter: memory,
    });
  };
  const byIp = make('fail_ip', limits.ipPoints);
  const byName = make('fail_name_ip', limits.namePoints);
  // Counts the account's attempts in the window without refusing any itself...
  const byAccount = make('fail_account', Number.MAX_SAFE_INTEGER);
  // ...and past the free ones, lets one through per delay (a point whose window is the delay).
  const accountGate = make('gate_account', 1, 1);
  const byDevice = make('fail_device', limits.namePoints);
  const byUser = make('fail_user', limits.namePoints);
  const nameKeyOf = (ip: string, nameKey: string) => `${nameKey}\u0000${ip}`;

  const giveBack = async (taken: Take[], success: boolean) => {
    await Promise.all(taken.map((t) => (success && t.forgetOnSuccess ? t.limiter.delete(t.key) : t.limiter.reward(t.key, 1)).catch(() => undefined)));
  };

  /**
   * Takes every point in order; on a refusal gives back those taken and throws. Returns what was
   * taken, and how many points each count had used with this one.
   */
  const takeAll = async (takes: Take[]): Promise<Take[] & { used: number[] }> => {
    const taken = Object.assign([] as Take[], { used: [] as number[] });
    for (const t of takes) {
      try {
        const res = await t.limiter.consume(t.key, 1, t.options ?? {});
        taken.push(t);
        taken.used.push(res.consumedPoints);
      } catch (error) {
        await giveBack(taken, false);
        // The refused point itself was counted by the consume: give it back too, so refused
        // attempts (never checked) do not lengthen anybody's wait.
        if (error instanceof RateLimiterRes) {
          await t.limiter.reward(t.key, 1, t.options ?? {}).catch(() => undefined);
          throw limited(error.msBeforeNext);
        }
        throw error;
      }
    }
    return taken;
  };

  const attempt = (taken: Take[]): Attempt => ({
    succeeded: () => giveBack(taken, true),
    failed: async () => undefined,
    cancelled: () => giveBack(taken, false),
  });

  return {
    async begin({ ip, nameKey, device }) {
      if (device !== undefined) {
        return attempt(await takeAll([{ limiter: byDevice, key: `${nameKey}\u0000${device}`, forgetOnSuccess: true }]));
      }
      const taken = await takeAll([
        { limiter: byIp, key: ip, forgetOnSuccess: false },
        { limiter: byName, key: nameKeyOf(ip, nameKey), forgetOnSuccess: true },
        { limiter: byAccount, key: nameKey, forgetOnSuccess: true },
      ]);
      // The account's attempts before this one (in flight or failed) decide whether this one must
      // wait for the gate: the consume that counted it said how many there were, atomically.
      const failures = (taken.used[2] ?? 1) - 1;
      if (failures < limits.accountPoints) return attempt(taken);
      const delay = Math.min(2 ** Math.min(failures - limits.accountPoints, 30), limits.window);
      try {
        const gate = await takeAll([{ limiter: accountGate, key: nameKey, options: { customDuration: delay }, forgetOnSuccess: true }]);
        return attempt([...taken, ...gate]);
      } catch (error) {
        await giveBack(taken, false);
        throw error;
      }
    },
    async beginUser(userId) {
      return attempt(await takeAll([{ limiter: byUser, key: userId, forgetOnSuccess: true }]));
    },
    async hit(ip) {
      try {
        await byIp.consume(ip);
      } catch (error) {
        if (error instanceof RateLimiterRes) throw limited(error.msBeforeNext);
        throw error;
      }
    },
  };
}
