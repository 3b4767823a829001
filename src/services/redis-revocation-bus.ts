import type { Redis } from 'ioredis';
import type { Revocation } from '../store/store';
import type { RevocationBus } from './revocations';

export const REVOCATION_CHANNEL = 'auth:revocations';

/**
 * A {@link RevocationBus} over Redis pub/sub. It needs two connections: one in subscriber mode
 * can do nothing else. Messages that do not parse are ignored: the store poll still catches up.
 */
export function createRedisRevocationBus(publisher: Redis, subscriber: Redis, channel = REVOCATION_CHANNEL): RevocationBus {
  return {
    publish(r) {
      // Fire and forget: a lost message costs at most one poll interval of lag.
      publisher.publish(channel, JSON.stringify(r)).catch(() => undefined);
    },
    subscribe(listener) {
      void subscriber.subscribe(channel).catch(() => undefined);
      subscriber.on('message', (ch: string, message: string) => {
        if (ch !== channel) return;
        try {
          const r = JSON.parse(message) as Partial<Revocation>;
          if (typeof r.sessionId === 'string' && typeof r.revokedAt === 'number') listener({ sessionId: r.sessionId, revokedAt: r.revokedAt });
        } catch {
          /* not ours */
        }
      });
    },
  };
}
