import type { Clock } from '../clock';
import type { NewAuditEvent, Store } from '../store/store';
import type { Logger } from './logger';

/**
 * Every event the audit trail records. The contract's `AuditEventName` lists the same names
 * (test/integration/audit.test.ts holds them together). `key_rotated`, `key_retired` and
 * `key_removed` are written by the keyring (services/signing-keys.ts) when the CLI or the
 * schedule changes the keys (actor null, `details.kid`).
 */
export const AUDIT_EVENTS = [
  'login_succeeded',
  'login_failed',
  'login_limited',
  'refresh_token_reused',
  'logout',
  'session_ended',
  'other_sessions_ended',
  'password_changed',
  'password_change_failed',
  'signup',
  'user_created',
  'role_changed',
  'user_disabled',
  'user_enabled',
  'password_set_by_admin',
  'user_deleted',
  'sessions_ended_by_admin',
  'key_rotated',
  'key_retired',
  'key_removed',
] as const;

export type AuditEventName = (typeof AUDIT_EVENTS)[number];

/** Where a request came from, as the audit trail keeps it (filled by the HTTP layer). */
export interface RequestMeta {
  /** The signed-in account that acts; null or left out when nobody is signed in. */
  actorId?: string | null;
  address?: string | null;
  userAgent?: string | null;
  requestId?: string | null;
}

/** Longest user agent kept (as in sessions); longer ones are cut. */
export const MAX_USER_AGENT = 512;
const MAX_ADDRESS = 64;
const MAX_REQUEST_ID = 64;
const MAX_TARGET_NAME = 256;

const cut = (value: string | null | undefined, max: number): string | null =>
  value === undefined || value === null || value === '' ? null : value.slice(0, max);

/**
 * One audit event. `details` is written by this code only, from values it chose: never a
 * password, a token, a hash or a name as typed (people type passwords into the name field).
 */
export function auditEvent(
  event: AuditEventName,
  at: number,
  meta: RequestMeta | undefined,
  fields: { targetId?: string | null; targetName?: string | null; details?: Record<string, unknown> } = {},
): NewAuditEvent {
  return {
    at,
    event,
    actorId: meta?.actorId ?? null,
    targetId: fields.targetId ?? null,
    targetName: cut(fields.targetName, MAX_TARGET_NAME),
    address: cut(meta?.address, MAX_ADDRESS),
    userAgent: cut(meta?.userAgent, MAX_USER_AGENT),
    requestId: cut(meta?.requestId, MAX_REQUEST_ID),
    details: fields.details && Object.keys(fields.details).length > 0 ? fields.details : null,
  };
}

/**
 * Writing audit events that belong to no transaction (refusals: failed and limited logins, a
 * refused password change). Events of a change (a login's session, a logout, an admin's change)
 * are written by the store in the change's own transaction instead: no change without its event.
 */
export interface AuditLog {
  /**
   * Writes the event in the background: the answer does not wait for it, and a failure (the
   * store away) costs a warning line, never the request. At most {@link MAX_PENDING} wait at
   * once; past that the event is dropped with a warning, so a flood cannot pile up memory.
   */
  record(event: NewAuditEvent | DeferredAuditEvent): void;
  /** Resolves when every write started so far has ended (tests, shutdown). */
  idle(): Promise<void>;
  /** Deletes the events older than the retention; returns how many. */
  prune(): Promise<number>;
  /** Prunes every `intervalMs` (timer unref'd) until {@link stop}; errors go to the logger. */
  start(intervalMs: number): void;
  stop(): void;
}

export const MAX_PENDING = 1_000;

/** An event whose fields need a look-up first (made in the background too). */
export interface DeferredAuditEvent {
  event: AuditEventName;
  build: () => Promise<NewAuditEvent>;
}

export function createAuditLog(opts: { store: Store; clock: Clock; logger: Logger; retentionDays: number }): AuditLog {
  const { store, clock, logger } = opts;
  const pending = new Set<Promise<void>>();
  let timer: NodeJS.Timeout | undefined;
  const prune = () => store.pruneAudit(clock.now() - opts.retentionDays * 86_400_000);
  return {
    record(event) {
      const name = event.event;
      if (pending.size >= MAX_PENDING) {
        logger.warn({ event: name, audit: 'dropped' }, 'audit event dropped: too many writes waiting');
        return;
      }
      const write: Promise<void> = ('build' in event ? event.build() : Promise.resolve(event))
        .then((e) => store.recordAudit(e))
        .catch((error: unknown) => {
          // The event's name only: its fields stay out of the log.
          logger.warn({ err: error, event: name, audit: 'lost' }, 'audit event could not be written');
        })
        .finally(() => {
          pending.delete(write);
        });
      pending.add(write);
    },
    async idle() {
      while (pending.size > 0) await Promise.all([...pending]);
    },
    prune,
    start(intervalMs) {
      this.stop();
      timer = setInterval(() => {
        prune().catch((error: unknown) => logger.error({ err: error }, 'audit pruning failed'));
      }, intervalMs);
      timer.unref();
    },
    stop() {
      if (timer) clearInterval(timer);
      timer = undefined;
    },
  };
}
