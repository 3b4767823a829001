import { LRUCache } from 'lru-cache';
import type { Clock } from '../clock';
import { AuthError, isAuthError } from '../errors';
import type { SessionRecord, Store } from '../store/store';
import { type AuditLog, auditEvent, MAX_USER_AGENT, type RequestMeta } from './audit';
import type { DeviceTokens } from './device-tokens';
import type { Attempt, LoginLimiter } from './login-limiter';
import type { Logger } from './logger';
import { type LoginOutcome, type MetricHooks, noMetricHooks } from './metric-hooks';
import { nameKey } from './names';
import { checkPasswordPolicy, type Passwords } from './passwords';
import type { RevocationList } from './revocations';
import { hashToken, openChildToken, randomId, randomToken, sealChildToken, type Tokens } from './tokens';
import { createUserAdmin, type PublicUser, toPublicUser, type UserAdmin } from './users';

export { type PublicUser, toPublicUser } from './users';

export interface AuthSettings {
  allowSignup: boolean;
  /** Seconds a refresh token lives unused. */
  refreshTokenTtl: number;
  /** Seconds a session lives at most. */
  sessionMaxAge: number;
  /**
   * Milliseconds within which a second use of a refresh token counts as a retry (an answer lost
   * on the wire, two tabs refreshing at once) and gets the session's current refresh token,
   * instead of ending the session as a replay.
   */
  refreshReuseGraceMs: number;
}

export interface TokenPair {
  accessToken: string;
  expiresIn: number;
  refreshToken: string;
  /** Seconds until the refresh token expires, for the cookie's Max-Age. */
  refreshExpiresIn: number;
  sessionId: string;
}

export interface SessionMeta {
  userAgent: string | null;
  /** The request's id, for the audit trail. */
  requestId?: string;
}

/** Who is trying: the client's address, and the trusted-device token it carries, if any. */
export interface ClientMeta {
  ip: string;
  /** The device cookie's value, as sent. */
  deviceToken?: string | undefined;
}

/** A login's answer: the tokens, and the device token that marks this browser trusted for the account. */
export type LoginResult = TokenPair & { deviceToken: string };

/** A signed-in user acting on their own account: the request's meta, and their name for the trail. */
export type SelfMeta = RequestMeta & { actorName?: string };

/** The logger for the lines of one call (the request's, with its id); the service's otherwise. */
export type CallLog = { log?: Logger };

/** Logging in and sessions, plus the account verbs of {@link UserAdmin}, which it delegates to. */
export interface AuthService extends UserAdmin {
  login(name: string, password: string, meta: SessionMeta & ClientMeta & CallLog): Promise<LoginResult>;
  refresh(refreshToken: string, call?: CallLog & { meta?: RequestMeta }): Promise<TokenPair>;
  /** Ends the session; `meta.actorId` is its user. */
  logout(sessionId: string, meta?: SelfMeta): Promise<void>;
  listSessions(userId: string): Promise<SessionRecord[]>;
  endSession(userId: string, sessionId: string, meta?: SelfMeta): Promise<void>;
  /** Ends every active session of the user but `currentSessionId`; returns how many. */
  endOtherSessions(userId: string, currentSessionId: string, meta?: SelfMeta): Promise<number>;
  changePassword(userId: string, current: string, next: string, call?: CallLog & Partial<ClientMeta> & { meta?: RequestMeta }): Promise<void>;
  signup(name: string, password: string, call?: CallLog & Partial<ClientMeta> & { meta?: RequestMeta }): Promise<PublicUser>;
}

export interface AuthDeps {
  store: Store;
  /** Brute-force limits, taken before every password check. */
  limiter: LoginLimiter;
  devices: DeviceTokens;
  tokens: Tokens;
  passwords: Passwords;
  revocations: RevocationList;
  clock: Clock;
  logger: Logger;
  settings: AuthSettings;
  /** Writes the events that belong to no transaction (refusals). */
  audit: AuditLog;
  /** Where login outcomes and refresh reuse are counted; nothing counts them when left out. */
  metrics?: MetricHooks;
}

/**
 * Runs one step of a password check whose limits were taken; if the step fails for another
 * reason than the password (the store is away, the hash queue is full), the attempt never counted
 * and its points are given back.
 */
async function checking<T>(attempt: Attempt, step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (error) {
    await attempt.cancelled();
    throw error;
  }
}

/** How a failed login is counted, from the error it ended with. */
function loginOutcome(error: unknown): LoginOutcome {
  const code = error instanceof AuthError ? error.code : undefined;
  if (code === 'invalid_credentials') return 'failed';
  // A brute-force count, or this client's share of the hash queue: refused before any check.
  if (code === 'rate_limited') return 'limited';
  return 'error';
}

const invalidCredentials = () => new AuthError('invalid_credentials', 'The name or the password is wrong.');
const invalidRefresh = () => new AuthError('invalid_refresh_token', 'The refresh token is invalid, expired or revoked.');

/** A limited login is written to the trail at most once per address and name in this many ms. */
export const LIMITED_EVENT_EVERY_MS = 60_000;
/** Addresses and names remembered for that, least recently used out first. */
const LIMITED_EVENT_KEYS = 10_000;
/**
 * And at most this many limited logins are written per minute in all (per process): an attack
 * from many addresses is refused by the thousand, and each written refusal costs a look-up and an
 * insert, competing with real logins for the store. The first ones of a burst say enough.
 */
export const LIMITED_EVENTS_PER_MINUTE = 20;

/** Links of a rotation chain followed at most for one retry (each used within the reuse interval). */
const MAX_RETRY_CHAIN = 8;

export function createAuthService(deps: AuthDeps): AuthService {
  const { store, tokens, passwords, revocations, clock, logger, settings, limiter, devices, audit } = deps;
  const metrics = deps.metrics ?? noMetricHooks;
  const users = createUserAdmin({ store, passwords, clock, revocations });
  // When each (address, name) last had a limited login written: an attack refused by the limits
  // by the thousand must not become a thousand writes. In memory only (the name may be a password).
  const limitedWritten = new LRUCache<string, number>({ max: LIMITED_EVENT_KEYS });
  let limitedWindow = { start: Number.NEGATIVE_INFINITY, written: 0 };

  /** Writes `login_limited` (at most once a minute per address and name, and 20 a minute in all), naming the account when there is one. */
  const noteLimited = (key: string, meta: RequestMeta, retryAfter: string | undefined) => {
    const now = clock.now();
    const seen = `${meta.address ?? ''}\u0000${key}`;
    const last = limitedWritten.get(seen);
    if (last !== undefined && now - last < LIMITED_EVENT_EVERY_MS) return;
    if (now - limitedWindow.start >= 60_000) limitedWindow = { start: now, written: 0 };
    if (limitedWindow.written >= LIMITED_EVENTS_PER_MINUTE) return;
    limitedWindow.written += 1;
    limitedWritten.set(seen, now);
    audit.record({
      event: 'login_limited',
      async build() {
        const user = await store.findUserByNameKey(key);
        const details = { ...(retryAfter ? { retry_after: Number(retryAfter) } : {}), ...(user ? {} : { known_user: false }) };
        return auditEvent('login_limited', now, { ...meta, actorId: null }, { targetId: user?.id ?? null, targetName: user?.name ?? null, details });
      },
    });
  };

  const issue = async (user: PublicUser, session: { id: string; expiresAt: number }, refreshToken: string, refreshExpiresAt: number): Promise<TokenPair> => {
    // The first token of a process waits for the keys to be loaded (start-up loads them first).
    await tokens.keyring.ready();
    const access = tokens.signAccess(user, session.id, session.expiresAt);
    return {
      accessToken: access.token,
      expiresIn: access.expiresIn,
      refreshToken,
      refreshExpiresIn: Math.max(1, Math.floor((refreshExpiresAt - clock.now()) / 1000)),
      sessionId: session.id,
    };
  };

  /**
   * A refresh token used again within the reuse interval: follows the chain it started (each
   * link sealed under the one before, see `sealChildToken`) to the token now current, and answers
   * with it and a new access token, as the first request would have been answered. Undefined when
   * the chain cannot be followed or the session has ended meanwhile.
   */
  const retryAnswer = async (token: string, sealed: string | null, now: number): Promise<TokenPair | undefined> => {
    let holder = token;
    let next = sealed;
    for (let i = 0; i < MAX_RETRY_CHAIN && next; i += 1) {
      const child = openChildToken(holder, next);
      if (child === undefined) return undefined;
      const row = await store.findRefreshToken(hashToken(child));
      if (!row) return undefined;
      if (row.usedAt !== null) {
        // Rotated again since (the other tab went on): follow on, while each use was recent.
        if (now - row.usedAt >= settings.refreshReuseGraceMs) return undefined;
        holder = child;
        next = row.childEnc;
        continue;
      }
      if (row.expiresAt <= now) return undefined;
      const session = await store.findSession(row.sessionId);
      if (!session || session.revokedAt !== null || session.expiresAt <= now) return undefined;
      const user = await store.findUserById(session.userId);
      if (!user || user.disabled) return undefined;
      return issue(toPublicUser(user), session, child, Math.min(row.expiresAt, session.expiresAt));
    }
    return undefined;
  };

  const login: AuthService['login'] = async (name, password, meta) => {
    const log = meta.log ?? logger;
    const key = nameKey(name);
    const device = devices.read(meta.deviceToken, key);
    const userAgent = meta.userAgent?.slice(0, MAX_USER_AGENT) ?? null;
    const trail: RequestMeta = { address: meta.ip, userAgent, requestId: meta.requestId ?? null };
    // The limits are taken before the password is checked: attempts in flight count already.
    let attempt: Attempt;
    try {
      attempt = await limiter.begin({ ip: meta.ip, nameKey: key, ...(device ? { device } : {}) });
    } catch (error) {
      if (isAuthError(error, 'rate_limited')) noteLimited(key, trail, error.headers?.['Retry-After']);
      throw error;
    }
    const user = await checking(attempt, () => store.findUserByNameKey(key));
    if (!user) {
      // Same cost as a wrong password, so timing does not tell which names exist.
      await checking(attempt, () => passwords.verifyDummy(password, meta.ip));
      await attempt.failed();
      // Security event without the name: people type passwords into the name field.
      log.info({ event: 'login_failed', reason: 'unknown_name' }, 'login failed');
      audit.record(auditEvent('login_failed', clock.now(), trail, { details: { reason: 'unknown_name' } }));
      throw invalidCredentials();
    }
    const ok = await checking(attempt, () => passwords.verify(user.passwordHash, password, meta.ip));
    if (!ok || user.disabled) {
      await attempt.failed();
      const reason = ok ? 'disabled' : 'wrong_password';
      log.info({ event: 'login_failed', reason, userId: user.id }, 'login failed');
      audit.record(auditEvent('login_failed', clock.now(), trail, { targetId: user.id, targetName: user.name, details: { reason } }));
      throw invalidCredentials();
    }
    await attempt.succeeded();
    const now = clock.now();
    if (passwords.needsRehash(user.passwordHash)) {
      await store.setPasswordHash(user.id, await passwords.hash(password), now);
    }
    const session = { id: randomId(), expiresAt: now + settings.sessionMaxAge * 1000 };
    const refreshToken = randomToken();
    const refreshExpiresAt = Math.min(now + settings.refreshTokenTtl * 1000, session.expiresAt);
    await store.createSession(
      { id: session.id, userId: user.id, createdAt: now, lastUsedAt: now, expiresAt: session.expiresAt, userAgent, address: meta.ip.slice(0, 64) },
      { tokenHash: hashToken(refreshToken), parentHash: null, expiresAt: refreshExpiresAt },
      auditEvent(
        'login_succeeded',
        now,
        { ...trail, actorId: user.id },
        {
          targetId: user.id,
          targetName: user.name,
          details: { session_id: session.id, ...(device ? { trusted_device: true } : {}) },
        },
      ),
    );
    log.info({ event: 'login', userId: user.id, sessionId: session.id, ...(device ? { trustedDevice: true } : {}) }, 'user logged in');
    return { ...(await issue(user, session, refreshToken, refreshExpiresAt)), deviceToken: devices.issue(key, device) };
  };

  return {
    ...users,

    login(name, password, meta) {
      return login(name, password, meta).then(
        (result) => {
          metrics.login('succeeded');
          return result;
        },
        (error: unknown) => {
          metrics.login(loginOutcome(error));
          throw error;
        },
      );
    },

    async refresh(refreshToken, call) {
      const log = call?.log ?? logger;
      const now = clock.now();
      const next = randomToken();
      // The new token's expiry is capped by the session's below, once the session is known.
      const provisional = now + settings.refreshTokenTtl * 1000;
      const result = await store.rotateRefreshToken(
        hashToken(refreshToken),
        { tokenHash: hashToken(next), parentHash: null, expiresAt: provisional, childEnc: sealChildToken(refreshToken, next) },
        now,
      );
      if (result.outcome === 'invalid') throw invalidRefresh();
      if (result.outcome === 'reused') {
        if (now - result.usedAt < settings.refreshReuseGraceMs) {
          // A retry, not a theft: the same session goes on, with the same current refresh token,
          // so two tabs (or a client whose answer was lost) end up holding one token.
          const answer = await retryAnswer(refreshToken, result.childEnc, now);
          if (!answer) throw invalidRefresh();
          log.info(
            { event: 'refresh_retried', sessionId: result.sessionId },
            'refresh token used again within the reuse interval: answered with the current token',
          );
          return answer;
        }
        // RFC 9700 §4.14.2: a replayed refresh token means it leaked; end its whole family.
        metrics.refreshReused();
        const session = await store.findSession(result.sessionId);
        const owner = session && (await store.findUserById(session.userId));
        const event = (revoked: boolean) =>
          auditEvent(
            'refresh_token_reused',
            now,
            { ...call?.meta, actorId: null },
            {
              targetId: session?.userId ?? null,
              targetName: owner?.name ?? null,
              details: { session_id: result.sessionId, session_revoked: revoked },
            },
          );
        if (await store.revokeSession(result.sessionId, 'refresh_token_reused', now, event(true))) revocations.add(result.sessionId, now);
        // Ended before (a logout, an earlier replay): the replay is still worth a line in the trail.
        else audit.record(event(false));
        log.warn({ event: 'refresh_token_reused', security: true, sessionId: result.sessionId }, 'refresh token replayed: session revoked');
        throw new AuthError('refresh_token_reused', 'The refresh token was already used; the session has been ended.');
      }
      const expiresAt = Math.min(provisional, result.session.expiresAt);
      return issue(toPublicUser(result.user), result.session, next, expiresAt);
    },

    async logout(sessionId, meta) {
      const now = clock.now();
      const event = auditEvent('logout', now, meta, {
        targetId: meta?.actorId ?? null,
        targetName: meta?.actorName ?? null,
        details: { session_id: sessionId },
      });
      if (await store.revokeSession(sessionId, 'logout', now, event)) revocations.add(sessionId, now);
    },

    listSessions: (userId) => store.listActiveSessions(userId, clock.now()),

    async endSession(userId, sessionId, meta) {
      const session = await store.findSession(sessionId);
      if (!session || session.userId !== userId || session.revokedAt !== null || session.expiresAt <= clock.now()) {
        throw new AuthError('session_not_found', 'No such active session.');
      }
      const now = clock.now();
      const event = auditEvent(
        'session_ended',
        now,
        { ...meta, actorId: userId },
        { targetId: userId, targetName: meta?.actorName ?? null, details: { session_id: sessionId } },
      );
      if (await store.revokeSession(sessionId, 'ended_by_user', now, event)) revocations.add(sessionId, now);
    },

    async endOtherSessions(userId, currentSessionId, meta) {
      const now = clock.now();
      const ids = await store.revokeUserSessions(userId, 'ended_by_user', now, {
        exceptSessionId: currentSessionId,
        audit: (revoked) =>
          auditEvent(
            'other_sessions_ended',
            now,
            { ...meta, actorId: userId },
            { targetId: userId, targetName: meta?.actorName ?? null, details: { sessions_ended: revoked.length } },
          ),
      });
      for (const id of ids) revocations.add(id, now);
      return ids.length;
    },

    async changePassword(userId, current, next, call) {
      const log = call?.log ?? logger;
      const user = await store.findUserById(userId);
      if (!user || user.disabled) throw new AuthError('invalid_token', 'The account is gone or disabled.');
      // A stolen access token must not buy unlimited guesses at the password: the same
      // take-before-check limit as a login, per account.
      const attempt = await limiter.beginUser(user.id);
      const trail: RequestMeta = { ...call?.meta, actorId: user.id };
      if (!(await checking(attempt, () => passwords.verify(user.passwordHash, current, call?.ip)))) {
        await attempt.failed();
        log.info({ event: 'password_change_failed', reason: 'wrong_password', userId: user.id }, 'password change refused');
        audit.record(
          auditEvent('password_change_failed', clock.now(), trail, { targetId: user.id, targetName: user.name, details: { reason: 'wrong_password' } }),
        );
        throw new AuthError('invalid_current_password', 'The current password is wrong.', {
          errors: [{ pointer: '/body/current_password', message: 'is wrong' }],
        });
      }
      await attempt.succeeded();
      // The current password was just checked, so an equal new one is the current one.
      if (next === current) {
        throw new AuthError('weak_password', 'The new password must differ from the current one.', {
          errors: [{ pointer: '/body/new_password', message: 'is the current password' }],
        });
      }
      checkPasswordPolicy(next, '/body/new_password', { name: user.name });
      const passwordHash = await passwords.hash(next, call?.ip);
      const now = clock.now();
      // The new hash, the end of every session and the event: one transaction.
      const result = await store.updateUser(
        user.id,
        { passwordHash },
        {
          now,
          keepAnAdmin: false,
          revokeReason: 'password_changed',
          audit: (before, revoked) => [
            auditEvent('password_changed', now, trail, { targetId: before.id, targetName: before.name, details: { sessions_ended: revoked.length } }),
          ],
        },
      );
      if (result.outcome !== 'changed') throw new AuthError('invalid_token', 'The account is gone or disabled.');
      for (const id of result.revoked) revocations.add(id, now);
      log.info({ event: 'password_changed', userId: user.id }, 'password changed; sessions ended');
    },

    async signup(name, password, call) {
      const log = call?.log ?? logger;
      if (!settings.allowSignup) throw new AuthError('signup_disabled', 'Sign-up is closed on this server.');
      const user = await users.addUser(name, password, 'user', call?.ip, call?.meta ?? {});
      log.info({ event: 'signup', userId: user.id }, 'user signed up');
      return user;
    },
  };
}
