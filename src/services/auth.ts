import type { Clock } from '../clock';
import { AuthError } from '../errors';
import type { SessionRecord, Store } from '../store/store';
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
}

/** Who is trying: the client's address, and the trusted-device token it carries, if any. */
export interface ClientMeta {
  ip: string;
  /** The device cookie's value, as sent. */
  deviceToken?: string | undefined;
}

/** A login's answer: the tokens, and the device token that marks this browser trusted for the account. */
export type LoginResult = TokenPair & { deviceToken: string };

/** The logger for the lines of one call (the request's, with its id); the service's otherwise. */
export type CallLog = { log?: Logger };

/** Logging in and sessions, plus the account verbs of {@link UserAdmin}, which it delegates to. */
export interface AuthService extends UserAdmin {
  login(name: string, password: string, meta: SessionMeta & ClientMeta & CallLog): Promise<LoginResult>;
  refresh(refreshToken: string, call?: CallLog): Promise<TokenPair>;
  logout(sessionId: string): Promise<void>;
  listSessions(userId: string): Promise<SessionRecord[]>;
  endSession(userId: string, sessionId: string): Promise<void>;
  changePassword(userId: string, current: string, next: string, call?: CallLog & Partial<ClientMeta>): Promise<void>;
  signup(name: string, password: string, call?: CallLog & Partial<ClientMeta>): Promise<PublicUser>;
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

/** Links of a rotation chain followed at most for one retry (each used within the reuse interval). */
const MAX_RETRY_CHAIN = 8;

export function createAuthService(deps: AuthDeps): AuthService {
  const { store, tokens, passwords, revocations, clock, logger, settings, limiter, devices } = deps;
  const metrics = deps.metrics ?? noMetricHooks;
  const users = createUserAdmin({ store, passwords, clock, revocations });

  const issue = (user: PublicUser, session: { id: string; expiresAt: number }, refreshToken: string, refreshExpiresAt: number): TokenPair => {
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

  const revokeAll = async (userId: string, reason: string) => {
    const now = clock.now();
    for (const id of await store.revokeUserSessions(userId, reason, now)) revocations.add(id, now);
  };

  const login: AuthService['login'] = async (name, password, meta) => {
    const log = meta.log ?? logger;
    const key = nameKey(name);
    const device = devices.read(meta.deviceToken, key);
    // The limits are taken before the password is checked: attempts in flight count already.
    const attempt = await limiter.begin({ ip: meta.ip, nameKey: key, ...(device ? { device } : {}) });
    const user = await checking(attempt, () => store.findUserByNameKey(key));
    if (!user) {
      // Same cost as a wrong password, so timing does not tell which names exist.
      await checking(attempt, () => passwords.verifyDummy(password, meta.ip));
      await attempt.failed();
      // Security event without the name: people type passwords into the name field.
      log.info({ event: 'login_failed', reason: 'unknown_name' }, 'login failed');
      throw invalidCredentials();
    }
    const ok = await checking(attempt, () => passwords.verify(user.passwordHash, password, meta.ip));
    if (!ok || user.disabled) {
      await attempt.failed();
      log.info({ event: 'login_failed', reason: ok ? 'disabled' : 'wrong_password', userId: user.id }, 'login failed');
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
      { id: session.id, userId: user.id, createdAt: now, lastUsedAt: now, expiresAt: session.expiresAt, userAgent: meta.userAgent?.slice(0, 512) ?? null },
      { tokenHash: hashToken(refreshToken), parentHash: null, expiresAt: refreshExpiresAt },
    );
    log.info({ event: 'login', userId: user.id, sessionId: session.id, ...(device ? { trustedDevice: true } : {}) }, 'user logged in');
    return { ...issue(user, session, refreshToken, refreshExpiresAt), deviceToken: devices.issue(key, device) };
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
          log.info({ event: 'refresh_retried', sessionId: result.sessionId }, 'refresh token used again within the reuse interval: answered with the current token');
          return answer;
        }
        // RFC 9700 §4.14.2: a replayed refresh token means it leaked; end its whole family.
        metrics.refreshReused();
        if (await store.revokeSession(result.sessionId, 'refresh_token_reused', now)) revocations.add(result.sessionId, now);
        log.warn({ event: 'refresh_token_reused', security: true, sessionId: result.sessionId }, 'refresh token replayed: session revoked');
        throw new AuthError('refresh_token_reused', 'The refresh token was already used; the session has been ended.');
      }
      const expiresAt = Math.min(provisional, result.session.expiresAt);
      return issue(toPublicUser(result.user), result.session, next, expiresAt);
    },

    async logout(sessionId) {
      const now = clock.now();
      if (await store.revokeSession(sessionId, 'logout', now)) revocations.add(sessionId, now);
    },

    listSessions: (userId) => store.listActiveSessions(userId, clock.now()),

    async endSession(userId, sessionId) {
      const session = await store.findSession(sessionId);
      if (!session || session.userId !== userId || session.revokedAt !== null || session.expiresAt <= clock.now()) {
        throw new AuthError('session_not_found', 'No such active session.');
      }
      const now = clock.now();
      if (await store.revokeSession(sessionId, 'ended_by_user', now)) revocations.add(sessionId, now);
    },

    async changePassword(userId, current, next, call) {
      const log = call?.log ?? logger;
      const user = await store.findUserById(userId);
      if (!user || user.disabled) throw new AuthError('invalid_token', 'The account is gone or disabled.');
      // A stolen access token must not buy unlimited guesses at the password: the same
      // take-before-check limit as a login, per account.
      const attempt = await limiter.beginUser(user.id);
      if (!(await checking(attempt, () => passwords.verify(user.passwordHash, current, call?.ip)))) {
        await attempt.failed();
        log.info({ event: 'password_change_failed', reason: 'wrong_password', userId: user.id }, 'password change refused');
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
      await store.setPasswordHash(user.id, await passwords.hash(next, call?.ip), clock.now());
      await revokeAll(user.id, 'password_changed');
      log.info({ event: 'password_changed', userId: user.id }, 'password changed; sessions ended');
    },

    async signup(name, password, call) {
      const log = call?.log ?? logger;
      if (!settings.allowSignup) throw new AuthError('signup_disabled', 'Sign-up is closed on this server.');
      const user = await users.addUser(name, password, 'user', call?.ip);
      log.info({ event: 'signup', userId: user.id }, 'user signed up');
      return user;
    },
  };
}
