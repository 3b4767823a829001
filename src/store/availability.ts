import { setTimeout as sleep } from 'node:timers/promises';
import { AuthError } from '../errors';
import type { Store } from './store';

/** Seconds a client is told to wait (`Retry-After`) while the store is away. */
export const STORE_RETRY_AFTER_SECONDS = 5;

// Node's words for a peer that is gone or was never there.
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ECONNABORTED']);

// PostgreSQL SQLSTATEs that say "not now" rather than "wrong": connection exceptions (class 08),
// the server shutting down or starting (57P01-57P03), a statement or lock timeout (57014, 55P03),
// too many connections and other resource limits (class 53), and a deadlock (40P01).
const PG_TRANSIENT = /^(08...|57P0[1-3]|57014|55P03|53...|40P01)$/;

// pg's own errors carry no code: a pool that could not connect in time, a connection that died,
// a query the client gave up on (query_timeout).
const PG_MESSAGES =
  /timeout exceeded when trying to connect|Connection terminated|Query read timeout|not queryable|Client was closed|Cannot use a pool after calling end/i;

// SQLite: another writer holds the lock past busy_timeout, or the disk refuses.
const SQLITE_TRANSIENT = /^SQLITE_(BUSY|LOCKED|IOERR|FULL|CANTOPEN|PROTOCOL)/;

/**
 * True when `error` says the store is unreachable, overloaded or too slow (something that passes
 * by itself), as opposed to a mistake in the query or the data. Looks through `cause` chains and
 * AggregateErrors (pg reports a refused IPv4 and IPv6 connect as one).
 */
export function isStoreUnavailable(error: unknown, depth = 0): boolean {
  if (depth > 5 || error === null || typeof error !== 'object') return false;
  if (error instanceof AuthError) return error.code === 'store_unavailable';
  const e = error as { code?: unknown; message?: unknown; cause?: unknown; errors?: unknown };
  if (typeof e.code === 'string' && (NETWORK_CODES.has(e.code) || PG_TRANSIENT.test(e.code) || SQLITE_TRANSIENT.test(e.code))) return true;
  if (typeof e.message === 'string' && PG_MESSAGES.test(e.message)) return true;
  if (Array.isArray(e.errors) && e.errors.some((inner) => isStoreUnavailable(inner, depth + 1))) return true;
  return isStoreUnavailable(e.cause, depth + 1);
}

/** The error requests get while the store is away: a 503 with `Retry-After`. */
export function storeUnavailable(cause: unknown): AuthError {
  return new AuthError('store_unavailable', 'The database is not answering. Try again shortly.', {
    cause,
    headers: { 'Retry-After': String(STORE_RETRY_AFTER_SECONDS) },
  });
}

/** The driver's own words for why the store is away, without credentials, for logs and start-up. */
export function describeStoreError(error: unknown): string {
  const parts: string[] = [];
  let e: unknown = error;
  for (let i = 0; i < 4 && e && typeof e === 'object'; i += 1) {
    const { message, code, errors } = e as { message?: unknown; code?: unknown; errors?: unknown };
    let text = typeof message === 'string' && message ? message : '';
    if (!text && Array.isArray(errors))
      text = errors
        .map((x) => (x as Error)?.message)
        .filter(Boolean)
        .join('; ');
    if (typeof code === 'string' && !text.includes(code)) text = text ? `${text} (${code})` : code;
    if (text && !parts.includes(text)) parts.push(text);
    e = (e as { cause?: unknown }).cause;
  }
  // A connection string in a driver message would carry its password.
  return (parts.join(': ') || String(error)).replace(/(\w+:\/\/[^:@/\s]*:)[^@\s]*@/g, '$1***@');
}

/**
 * Wraps every verb of `store` so that an outage comes out as one error, `store_unavailable`
 * (503, `Retry-After`), which the HTTP layer answers as a problem and the services can tell from
 * a real failure. Other errors pass through untouched.
 */
export function guardStore(store: Store): Store {
  const guarded = {} as Record<string, unknown>;
  for (const [name, verb] of Object.entries(store) as [string, unknown][]) {
    if (typeof verb !== 'function') {
      guarded[name] = verb;
      continue;
    }
    guarded[name] = async (...args: unknown[]) => {
      try {
        return await (verb as (...a: unknown[]) => Promise<unknown>).apply(store, args);
      } catch (error) {
        if (!(error instanceof AuthError) && isStoreUnavailable(error)) throw storeUnavailable(error);
        throw error;
      }
    };
  }
  return guarded as unknown as Store;
}

/** Start-up gave up on the store; the message says why, in the driver's words. */
export class StoreStartupError extends Error {
  override readonly name = 'StoreStartupError';
}

/** One pause of {@link retryWhileStoreAway}. */
export interface StoreWait {
  attempt: number;
  delayMs: number;
  /** The driver's words for why the store is away ({@link describeStoreError}). */
  reason: string;
}

/**
 * Runs `step` until it succeeds, pausing while the store is away (250 ms, doubling up to 5 s) for
 * up to `boundMs`; then throws a {@link StoreStartupError} whose message is `giveUp(reason)`.
 * Any other error is thrown at once.
 */
export async function retryWhileStoreAway<T>(
  boundMs: number,
  step: () => Promise<T>,
  opts: { giveUp: (reason: string) => string; onWait?: (wait: StoreWait) => void },
): Promise<T> {
  const started = Date.now();
  let delay = 250;
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await step();
    } catch (error) {
      if (!isStoreUnavailable(error)) throw error;
      const reason = describeStoreError(error);
      const left = boundMs - (Date.now() - started);
      if (left <= 0) throw new StoreStartupError(opts.giveUp(reason), { cause: error });
      const pause = Math.min(delay, left);
      opts.onWait?.({ attempt, delayMs: pause, reason });
      await sleep(pause);
      delay = Math.min(delay * 2, 5_000);
    }
  }
}
