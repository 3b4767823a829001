import type { Context } from 'koa';
import { AuthError } from '../errors';
import type { components } from '../generated/openapi';
import type { AuditEventRecord } from '../store/store';
import type { AuthService, SelfMeta, TokenPair } from '../services/auth';
import type { AccessClaims } from '../services/tokens';
import { DEVICE_TRUST_SECONDS } from '../services/device-tokens';
import type { DependencyState, Health } from '../services/health';
import { createHash } from 'node:crypto';
import type { LoginLimiter } from '../services/login-limiter';
import type { Keyring, PublicJwk, SigningAlgorithm } from '../services/signing-keys';
import type { Logger } from '../services/logger';
import type { Store } from '../store/store';
import type { AuthUses, Handlers } from './handler-types';
import { requestLogger } from './request-log';
import { decodeCursor, encodeCursor, setNextLink } from './paging';
import type { SameOriginGuard } from './same-origin';
import { summariseAgent } from './user-agent';

export const REFRESH_COOKIE = 'refresh_token';
/** The cookie goes only to `POST /refresh`: logout finds its session from the access token. */
export const REFRESH_COOKIE_PATH = '/refresh';
/** Marks a browser that has logged in to an account before (see services/device-tokens.ts). */
export const DEVICE_COOKIE = 'login_device';
export const DEVICE_COOKIE_PATH = '/login';

export interface HandlerDeps {
  auth: AuthService;
  /** The server's logger; each request's lines get its id through {@link requestLogger}. */
  logger: Logger;
  store: Store;
  health: Health;
  limiter: LoginLimiter;
  allowSignup: boolean;
  /** `auto`: `Secure` when the request came over HTTPS. */
  cookieSecure: 'auto' | boolean;
  /** Refuses cross-site requests to the operations the refresh cookie can drive. */
  sameOrigin: SameOriginGuard;
  /** The public keys for the JWKS. */
  keyring: Pick<Keyring, 'publicJwks'>;
  discovery: {
    /** The server's URL as clients reach it; else the request's origin. */
    publicUrl: string | undefined;
    algorithm: SigningAlgorithm;
    /** Seconds the key set and metadata may be cached. */
    jwksMaxAge: number;
  };
}

/** The contract's bound on `If-None-Match` (GET /.well-known/jwks.json). */
const IF_NONE_MATCH_MAX = 1_024;

/**
 * Whether `If-None-Match` matches `etag` (RFC 9110 §13.1.2: weak comparison, `*` matches any).
 */
function noneMatch(header: string, etag: string): boolean {
  if (header.trim() === '*') return true;
  const bare = etag.replace(/^W\//, '');
  return header.split(',').some((tag) => tag.trim().replace(/^W\//, '') === bare);
}

/**
 * What each handler reads of the caller's access token (see {@link AuthUses}). The handler types
 * come from this table (a handler marked `none` has no `auth` to read), and start-up refuses a
 * contract whose `security` lets an operation be called without the token its handler reads.
 */
export const AUTH_USE = {
  health: 'none',
  ready: 'none',
  serverInfo: 'none',
  login: 'none',
  refresh: 'none',
  signup: 'none',
  logout: 'required',
  getUser: 'required',
  changePassword: 'required',
  listUsers: 'required',
  listSessions: 'required',
  deleteSession: 'required',
  getJwks: 'none',
  getServerMetadata: 'none',
  endOtherSessions: 'required',
  updateUser: 'required',
  deleteUser: 'required',
  setUserPassword: 'required',
  endUserSessions: 'required',
  listAuditEvents: 'required',
  listActivity: 'required',
  createUser: 'required',
} as const satisfies AuthUses;

const iso = (ms: number) => new Date(ms).toISOString();

type EventName = components['schemas']['AuditEventName'];
type Details = components['schemas']['AuditDetails'];

/** Only an admin's token passes; any other is 403 (its role is current: a role change ends its sessions). */
function requireAdmin(claims: AccessClaims, detail = 'Only admins may do this.'): void {
  if (claims.role !== 'admin') throw new AuthError('forbidden', detail);
}

/** Where the request came from, for the audit trail; the actor is the token's account, when there is one. */
function requestMeta(ctx: Context, claims?: AccessClaims): SelfMeta {
  return {
    actorId: claims?.sub ?? null,
    ...(claims ? { actorName: claims.name } : {}),
    address: ctx.ip,
    userAgent: ctx.get('user-agent') || null,
    requestId: (ctx.state['reqId'] as string | undefined) ?? null,
  };
}

const isAuditCursor = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v > 0;
const isUserCursor = (v: unknown): v is [number, string] =>
  Array.isArray(v) && v.length === 2 && typeof v[0] === 'number' && Number.isSafeInteger(v[0]) && typeof v[1] === 'string' && v[1].length <= 256;

/** A page of events one more than asked, cut to `limit`, with the next page's link when there is one. */
function pageOf(ctx: Context, query: Record<string, unknown>, rows: AuditEventRecord[], limit: number): AuditEventRecord[] {
  const page = rows.slice(0, limit);
  const last = page[page.length - 1];
  if (rows.length > limit && last) setNextLink(ctx, query, encodeCursor(last.id));
  return page;
}

/** An RFC 3339 time of the query, in ms (the contract checked its form). */
const timeOf = (text: string | undefined) => (text === undefined ? undefined : Date.parse(text));

/** The HTTP side of every operation: adapts ctx to the services and back, nothing more. */
export function createHandlers(deps: HandlerDeps): Handlers {
  const { auth, store, limiter } = deps;
  const log = (ctx: Context) => ({ log: requestLogger(ctx, deps.logger) });

  /** An httpOnly, SameSite=Strict cookie for `path` only; `null` clears it. */
  const setCookie = (ctx: Context, name: string, path: string, value: string | null, maxAgeSeconds = 0) => {
    const secure = deps.cookieSecure === 'auto' ? ctx.secure : deps.cookieSecure;
    // Koa refuses to set a Secure cookie on a plain connection unless told the client is on
    // HTTPS (behind a TLS-terminating proxy, with COOKIE_SECURE=true).
    if (secure) ctx.cookies.secure = true;
    ctx.cookies.set(name, value, {
      httpOnly: true,
      sameSite: 'strict',
      secure,
      path,
      overwrite: true,
      ...(value === null ? { expires: new Date(0) } : { maxAge: maxAgeSeconds * 1000 }),
    });
  };
  const setRefreshCookie = (ctx: Context, value: string | null, maxAgeSeconds = 0) => setCookie(ctx, REFRESH_COOKIE, REFRESH_COOKIE_PATH, value, maxAgeSeconds);
  // The trusted-device token: sent back only to POST /login, never readable by page scripts.
  const setDeviceCookie = (ctx: Context, value: string) => setCookie(ctx, DEVICE_COOKIE, DEVICE_COOKIE_PATH, value, DEVICE_TRUST_SECONDS);

  /** The pair; the refresh token always in the cookie, and in the body only when `inBody`. */
  // The key set as sent, and its ETag, made again only when the keys change.
  let jwksCache: { ids: string; body: { keys: PublicJwk[] }; etag: string } | undefined;
  const jwks = () => {
    const keys = deps.keyring.publicJwks();
    const ids = keys.map((k) => k.kid).join(',');
    if (jwksCache?.ids !== ids) {
      const body = { keys };
      jwksCache = { ids, body, etag: `"${createHash('sha256').update(JSON.stringify(body)).digest('base64url').slice(0, 27)}"` };
    }
    return jwksCache;
  };
  const publicCache = `public, max-age=${deps.discovery.jwksMaxAge}`;

  const tokenReply = (ctx: Context, pair: TokenPair, inBody: boolean) => {
    setRefreshCookie(ctx, pair.refreshToken, pair.refreshExpiresIn);
    const body = { access_token: pair.accessToken, token_type: 'Bearer' as const, expires_in: pair.expiresIn };
    return { status: 200 as const, body: inBody ? { ...body, refresh_token: pair.refreshToken } : body };
  };

  return {
    health: () => ({ status: 200, body: { status: 'ok' } }),

    async ready() {
      const { health } = deps;
      // Shutting down: load balancers must stop sending here, whatever the dependencies say.
      if (health.draining) throw new AuthError('not_ready', 'The server is shutting down.', { extensions: { checks: { server: 'down' } } });
      let storeState: DependencyState = 'up';
      let cause: unknown;
      try {
        await store.ping();
      } catch (error) {
        storeState = 'down';
        cause = error;
      }
      health.set('store', storeState, storeState === 'down' ? 'the store does not answer' : undefined);
      // Each dependency by name; Redis is only ever degraded (revocations by polling, limits per
      // process), which leaves the instance able to serve.
      const checks: Record<string, DependencyState> = {};
      for (const [name, status] of Object.entries(health.snapshot())) checks[name] = status.state;
      checks['store'] = storeState;
      if (storeState === 'down') throw new AuthError('not_ready', 'The store does not answer.', { cause, extensions: { checks } });
      return { status: 200, body: { status: 'ok', checks } };
    },

    serverInfo: () => ({ status: 200, body: { signup_enabled: deps.allowSignup } }),

    async login({ body, ctx }) {
      // A login sets cookies (and reads the trusted-device one): another site must not log a
      // browser in to an account of its choosing (login CSRF).
      deps.sameOrigin(ctx);
      const result = await auth.login(body.name, body.password, {
        userAgent: ctx.get('user-agent') || null,
        ip: ctx.ip,
        deviceToken: ctx.cookies.get(DEVICE_COOKIE),
        requestId: ctx.state['reqId'] as string,
        ...log(ctx),
      });
      setDeviceCookie(ctx, result.deviceToken);
      // The pages ask for the cookie flow: their scripts never see the refresh token.
      return tokenReply(ctx, result, body.refresh_token_in !== 'cookie');
    },

    async refresh({ body, ctx }) {
      // The cookie rides along with whatever a browser sends here: only this server's pages (or
      // a configured origin) may spend it. A token in the body is the sender's own.
      if (body.refresh_token === undefined) deps.sameOrigin(ctx);
      const token = body.refresh_token ?? ctx.cookies.get(REFRESH_COOKIE);
      if (!token) throw new AuthError('invalid_refresh_token', 'No refresh token was sent (cookie or body).');
      try {
        // A browser's refresh token stays in the httpOnly cookie: page scripts never see it.
        return tokenReply(ctx, await auth.refresh(token, { ...log(ctx), meta: requestMeta(ctx) }), body.refresh_token !== undefined);
      } catch (error) {
        // A dead cookie is of no more use to the browser.
        if (!body.refresh_token) setRefreshCookie(ctx, null);
        throw error;
      }
    },

    async logout({ auth: claims, ctx }) {
      deps.sameOrigin(ctx);
      await auth.logout(claims.sid, requestMeta(ctx, claims));
      setRefreshCookie(ctx, null);
      return { status: 204 };
    },

    getUser: ({ auth: claims }) => ({ status: 200, body: { id: claims.sub, name: claims.name, role: claims.role } }),

    async changePassword({ auth: claims, body, ctx }) {
      await auth.changePassword(claims.sub, body.current_password, body.new_password, { ...log(ctx), ip: ctx.ip, meta: requestMeta(ctx, claims) });
      return { status: 204 };
    },

    async listUsers({ auth: claims, query, ctx }) {
      requireAdmin(claims, 'Only admins may list users.');
      const limit = query.limit ?? 100;
      const after = query.cursor === undefined ? undefined : decodeCursor(query.cursor, isUserCursor);
      const page = await auth.searchUsers({
        ...(query.q !== undefined ? { q: query.q } : {}),
        ...(after ? { after: { createdAt: after[0], nameKey: after[1] } } : {}),
        limit,
      });
      if (page.next) setNextLink(ctx, { ...query, limit }, encodeCursor([page.next.createdAt, page.next.nameKey]));
      return {
        status: 200,
        body: page.users.map((u) => ({ id: u.id, name: u.name, role: u.role, disabled: u.disabled, created_at: iso(u.createdAt) })),
      };
    },

    async updateUser({ auth: claims, params, body, ctx }) {
      requireAdmin(claims);
      const { user } = await auth.changeAccount(
        params.id,
        { ...(body.role !== undefined ? { role: body.role } : {}), ...(body.disabled !== undefined ? { disabled: body.disabled } : {}) },
        requestMeta(ctx, claims),
      );
      return { status: 200, body: { id: user.id, name: user.name, role: user.role, disabled: user.disabled, created_at: iso(user.createdAt) } };
    },

    async createUser({ auth: claims, body, ctx }) {
      requireAdmin(claims);
      const user = await auth.createAccount(body.name, body.password, body.role ?? 'user', requestMeta(ctx, claims), ctx.ip);
      return { status: 201, body: { id: user.id, name: user.name, role: user.role, disabled: user.disabled, created_at: iso(user.createdAt) } };
    },

    async deleteUser({ auth: claims, params, ctx }) {
      requireAdmin(claims);
      await auth.deleteUserById(params.id, requestMeta(ctx, claims));
      return { status: 204 };
    },

    async setUserPassword({ auth: claims, params, body, ctx }) {
      requireAdmin(claims);
      await auth.setPasswordById(params.id, body.password, requestMeta(ctx, claims));
      return { status: 204 };
    },

    async endUserSessions({ auth: claims, params, ctx }) {
      requireAdmin(claims);
      const { sessionsEnded } = await auth.endUserSessions(params.id, requestMeta(ctx, claims));
      return { status: 200, body: { sessions_ended: sessionsEnded } };
    },

    async listAuditEvents({ auth: claims, query, ctx }) {
      requireAdmin(claims);
      const limit = query.limit ?? 50;
      const beforeId = query.cursor === undefined ? undefined : decodeCursor(query.cursor, isAuditCursor);
      const since = timeOf(query.since);
      const until = timeOf(query.until);
      const rows = await store.listAudit({
        limit: limit + 1,
        ...(query.user !== undefined ? { userId: query.user } : {}),
        ...(query.event !== undefined ? { event: query.event } : {}),
        ...(since !== undefined ? { since } : {}),
        ...(until !== undefined ? { until } : {}),
        ...(beforeId !== undefined ? { beforeId } : {}),
      });
      return {
        status: 200,
        body: pageOf(ctx, { ...query, limit }, rows, limit).map((e) => ({
          id: String(e.id),
          at: iso(e.at),
          event: e.event as EventName,
          actor_id: e.actorId,
          target_id: e.targetId,
          target_name: e.targetName,
          address: e.address,
          user_agent: e.userAgent,
          request_id: e.requestId,
          details: e.details as Details,
        })),
      };
    },

    async listActivity({ auth: claims, query, ctx }) {
      const limit = query.limit ?? 50;
      const beforeId = query.cursor === undefined ? undefined : decodeCursor(query.cursor, isAuditCursor);
      // What happened to the caller's account: the events that name it as their target.
      const rows = await store.listAudit({ targetId: claims.sub, limit: limit + 1, ...(beforeId !== undefined ? { beforeId } : {}) });
      return {
        status: 200,
        body: pageOf(ctx, { ...query, limit }, rows, limit).map((e) => ({
          id: String(e.id),
          at: iso(e.at),
          event: e.event as EventName,
          by: e.actorId === claims.sub ? ('self' as const) : e.actorId === null ? ('none' as const) : ('admin' as const),
          address: e.address,
          user_agent: e.userAgent,
          ...summariseAgent(e.userAgent),
          details: e.details as Details,
        })),
      };
    },

    async signup({ body, ctx }) {
      if (!deps.allowSignup) throw new AuthError('signup_disabled', 'Sign-up is closed on this server.');
      await limiter.hit(ctx.ip);
      return { status: 201, body: await auth.signup(body.name, body.password, { ...log(ctx), ip: ctx.ip, meta: requestMeta(ctx) }) };
    },

    async listSessions({ auth: claims }) {
      const sessions = await auth.listSessions(claims.sub);
      return {
        status: 200,
        body: sessions.map((s) => ({
          id: s.id,
          created_at: iso(s.createdAt),
          last_used_at: iso(s.lastUsedAt),
          address: s.address,
          user_agent: s.userAgent,
          ...summariseAgent(s.userAgent),
          current: s.id === claims.sid,
        })),
      };
    },

    getJwks({ ctx }) {
      const { body, etag } = jwks();
      ctx.set('Cache-Control', publicCache);
      ctx.set('ETag', etag);
      const ifNoneMatch = ctx.get('if-none-match');
      if (ifNoneMatch.length > IF_NONE_MATCH_MAX) {
        const message = `must be at most ${IF_NONE_MATCH_MAX} characters`;
        throw new AuthError('invalid_request', `Invalid header: /headers/if-none-match ${message}`, {
          errors: [{ pointer: '/headers/if-none-match', message }],
        });
      }
      if (ifNoneMatch && noneMatch(ifNoneMatch, etag)) return { status: 304 };
      return { status: 200, body };
    },

    getServerMetadata({ ctx }) {
      // Without PUBLIC_URL: as this request reached the server (X-Forwarded-Proto and -Host with TRUST_PROXY).
      const base = deps.discovery.publicUrl ?? `${ctx.protocol}://${ctx.host}`;
      ctx.set('Cache-Control', publicCache);
      return {
        status: 200,
        body: {
          issuer: base,
          jwks_uri: `${base}/.well-known/jwks.json`,
          token_endpoint: `${base}/login`,
          token_endpoint_auth_methods_supported: ['none' as const],
          response_types_supported: [],
          access_token_signing_alg_values_supported: [deps.discovery.algorithm],
        },
      };
    },

    async deleteSession({ auth: claims, params, ctx }) {
      await auth.endSession(claims.sub, params.id, requestMeta(ctx, claims));
      return { status: 204 };
    },

    async endOtherSessions({ auth: claims, ctx }) {
      const ended = await auth.endOtherSessions(claims.sub, claims.sid, requestMeta(ctx, claims));
      return { status: 200, body: { sessions_ended: ended } };
    },
  };
}
