import type { Clock } from '../clock';
import type { Revocation, Store } from '../store/store';

/**
 * Carries revocations between instances as they happen (Redis pub/sub in production), so a
 * logout on one instance is refused by the others within milliseconds rather than at the next
 * poll of the store. The poll stays as the safety net for missed messages.
 */
export interface RevocationBus {
  publish(revocation: Revocation): void;
  /** Calls `listener` for every revocation another instance publishes. */
  subscribe(listener: (revocation: Revocation) => void): void;
}

/**
 * The sessions whose access tokens must be refused, held in memory so that checking a request
 * costs a map look-up and no database round trip. An entry is dropped once every access token
 * of its session has expired anyway. Rebuilt from the store at start-up and kept in step with
 * revocations made by other processes (the CLI, other instances) by polling the store and,
 * when there is one, through a {@link RevocationBus}.
 */
export interface RevocationList {
  has(sessionId: string): boolean;
  /** Records a revocation made here, and tells the other instances when there is a bus. */
  add(sessionId: string, revokedAt: number): void;
  /** Loads revocations made since the last sync (at start-up: since the oldest that matters). */
  sync(): Promise<void>;
  /** Syncs every `intervalMs` until {@link stop}; errors go to `onError`. */
  start(intervalMs: number, onError: (error: unknown) => void): void;
  stop(): void;
  readonly size: number;
}

export function createRevocationList(opts: { store: Store; clock: Clock; retainMs: number; bus?: RevocationBus }): RevocationList {
  const { store, clock, retainMs, bus } = opts;
  const revoked = new Map<string, number>();
  bus?.subscribe((r) => revoked.set(r.sessionId, r.revokedAt));
  let syncedTo: number | undefined;
  let timer: NodeJS.Timeout | undefined;

  const prune = (now: number) => {
    for (const [id, at] of revoked) if (at + retainMs < now) revoked.delete(id);
  };

  const list: RevocationList = {
    has: (sessionId) => revoked.has(sessionId),
    add(sessionId, revokedAt) {
      revoked.set(sessionId, revokedAt);
      bus?.publish({ sessionId, revokedAt });
    },
    async sync() {
      const now = clock.now();
      // Overlap the previous window a little: a revocation committed while the last query ran
      // may carry a timestamp just before it.
      const since = syncedTo === undefined ? now - retainMs : syncedTo - 5_000;
      for (const r of await store.revokedSince(since)) revoked.set(r.sessionId, r.revokedAt);
      syncedTo = now;
      prune(now);
    },
    start(intervalMs, onError) {
      list.stop();
      timer = setInterval(() => list.sync().catch(onError), intervalMs);
      timer.unref();
    },
    stop() {
      if (timer) clearInterval(timer);
      timer = undefined;
    },
    get size() {
      return revoked.size;
    },
  };
  return list;
}
