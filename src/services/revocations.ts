import type { Clock } from '../clock';
import type { Revocation, Store } from '../store/store';
import { type MetricHooks, noMetricHooks } from './metric-hooks';

/**
 * Carries revocations between instances as they happen (Redis pub/sub in production), so a
 * logout on one instance is refused by the others within milliseconds rather than at the next
 * poll of the store. The poll stays as the safety net for missed messages.
 */
export interface RevocationBus {
  publish(revocation: Revocation): void;
  /**
   * Calls `listener` for every revocation another instance publishes, and `onResubscribed` each
   * time the subscription is made again after a break (messages sent meanwhile were lost, so the
   * list catches up from the store at once).
   */
  subscribe(listener: (revocation: Revocation) => void, onResubscribed?: () => void): void;
}

/**
 * The sessions whose access tokens must be refused, held in memory so that checking a request
 * costs a map look-up and no database round trip. An entry is dropped once every access token
 * of its session has expired anyway. Rebuilt from the store at start-up and kept in step with
 * revocations made by other processes (the CLI, other instances) by following the store's
 * revocation log and, when there is one, through a {@link RevocationBus}.
 */
export interface RevocationList {
  has(sessionId: string): boolean;
  /** Records a revocation made here, and tells the other instances when there is a bus. */
  add(sessionId: string, revokedAt: number): void;
  /**
   * Reads the revocations logged since the last sync (at start-up: those that still matter).
   * Calls made while one runs share it, so a slow store never piles up polls.
   */
  sync(): Promise<void>;
  /** Syncs `intervalMs` after the end of each sync until {@link stop}; errors go to `onError`, successes to `onSuccess`. */
  start(intervalMs: number, onError: (error: unknown) => void, onSuccess?: () => void): void;
  stop(): void;
  readonly size: number;
}

/**
 * How much later than its `revokedAt` a revocation may commit, at most: a transaction of a few
 * statements, each bounded by the store timeouts. Only the start-up load relies on it; polls
 * follow the log's commit order and need no such bound.
 */
export const STARTUP_SLACK_MS = 60_000;

export function createRevocationList(opts: {
  store: Store;
  clock: Clock;
  retainMs: number;
  bus?: RevocationBus;
  metrics?: Pick<MetricHooks, 'revoked'>;
}): RevocationList {
  const { store, clock, retainMs, bus } = opts;
  const metrics = opts.metrics ?? noMetricHooks;
  // Session id -> when the entry may go: every access token of the session has expired by then.
  // Counted from when this process learned of it as well as from `revokedAt`, so a revocation
  // that committed late (and was learned late) is still kept a whole token lifetime.
  // At start-up the commit times of old entries are unknown, but no revocation commits later
  // than STARTUP_SLACK_MS after its `revokedAt` (statements are bounded by the store timeouts).
  const revoked = new Map<string, number>();
  const remember = (sessionId: string, revokedAt: number, atStartup = false) => {
    const until = (atStartup ? revokedAt + STARTUP_SLACK_MS : Math.max(revokedAt, clock.now())) + retainMs;
    if ((revoked.get(sessionId) ?? 0) < until) revoked.set(sessionId, until);
  };
  let cursor: number | undefined;
  let running: Promise<void> | undefined;
  let timer: NodeJS.Timeout | undefined;
  let started = false;

  const prune = (now: number) => {
    for (const [id, until] of revoked) if (until < now) revoked.delete(id);
  };

  const syncOnce = async () => {
    const now = clock.now();
    // Drain the log: a burst of revocations may take more than one batch.
    for (let i = 0; i < 100; i += 1) {
      const atStartup = cursor === undefined;
      const batch = await store.revocationsAfter(cursor, now - retainMs - STARTUP_SLACK_MS);
      for (const r of batch.revocations) remember(r.sessionId, r.revokedAt, atStartup);
      cursor = batch.cursor;
      if (!batch.more) break;
    }
    prune(now);
  };

  const list: RevocationList = {
    has: (sessionId) => revoked.has(sessionId),
    add(sessionId, revokedAt) {
      remember(sessionId, revokedAt);
      metrics.revoked();
      bus?.publish({ sessionId, revokedAt });
    },
    sync() {
      running ??= syncOnce().finally(() => {
        running = undefined;
      });
      return running;
    },
    start(intervalMs, onError, onSuccess) {
      list.stop();
      started = true;
      // The next poll is planned when this one ends: a store that hangs holds one poll, not a pile.
      const tick = () => {
        timer = setTimeout(() => {
          list
            .sync()
            .then(onSuccess, onError)
            .finally(() => {
              if (started) tick();
            });
        }, intervalMs);
        timer.unref();
      };
      tick();
    },
    stop() {
      started = false;
      if (timer) clearTimeout(timer);
      timer = undefined;
    },
    get size() {
      return revoked.size;
    },
  };
  bus?.subscribe(
    (r) => remember(r.sessionId, r.revokedAt),
    () => {
      // Messages published while the subscription was down are gone: catch up from the log.
      if (cursor !== undefined) list.sync().catch(() => undefined);
    },
  );
  return list;
}
