import path from 'node:path';
import cors from '@koa/cors';
import Koa, { type Middleware } from 'koa';
import compress from 'koa-compress';
import type pino from 'pino';
import { type Clock, systemClock } from './clock';
import type { Config } from './config';
import { type Contract, loadContract } from './http/contract';
import { allowedMethods, contractRouter } from './http/contract-router';
import { AUTH_USE, createHandlers } from './http/handlers';
import { notFoundPage } from './http/not-found-page';
import { problemResponses } from './http/problem';
import { requestLog } from './http/request-log';
import { requireToken } from './http/require-token';
import { sameOriginGuard } from './http/same-origin';
import { helmetHeaders, securityHeaders } from './http/security-headers';
import { packageDir, staticFiles } from './http/static-files';
import { createAjv } from './http/validation';
import { type AuditLog, createAuditLog } from './services/audit';
import { type AuthService, createAuthService } from './services/auth';
import { createDeviceTokens } from './services/device-tokens';
import { createHealth, type Health } from './services/health';
import { createLoginLimiter, type LoginLimiter } from './services/login-limiter';
import type { Metrics } from './services/metrics';
import type { Passwords } from './services/passwords';
import { createRevocationList, type RevocationBus, type RevocationList } from './services/revocations';
import { createKeyring, type KeyChangeBus, type Keyring } from './services/signing-keys';
import { createTokens, type Tokens } from './services/tokens';
import type { Store } from './store/store';

export interface AppDeps {
  /** With `jwtSecret` set: the server resolves a missing one before building the app. */
  config: Config;
  store: Store;
  passwords: Passwords;
  logger: pino.Logger;
  clock?: Clock;
  /** Defaults to an in-memory limiter with the configured limits. */
  limiter?: LoginLimiter;
  contract?: Contract;
  /** Shares revocations between instances as they happen (Redis pub/sub); optional. */
  revocationBus?: RevocationBus;
  /** The instance's health (dependency states, draining); a fresh one when left out. */
  health?: Health;
  /** Tells the other instances of a key change at once (Redis pub/sub); optional. */
  keyChangeBus?: KeyChangeBus;
  /**
   * Prometheus metrics (`services/metrics.ts`), served by the server on their own listener.
   * Left out, nothing is counted and requests pay nothing for metrics.
   */
  metrics?: Metrics;
}

export interface Services {
  auth: AuthService;
  /** The audit trail's writes outside transactions, and its pruning. */
  audit: AuditLog;
  tokens: Tokens;
  /** The signing keys; `sync()` loads them (start-up, and then every poll interval). */
  keyring: Keyring;
  revocations: RevocationList;
  limiter: LoginLimiter;
  contract: Contract;
  health: Health;
}

export type AuthApp = Koa & { services: Services };

export const PUBLIC_DIR = path.join(__dirname, '..', 'public');
/** The page browsers get for a path that is not there (in PUBLIC_DIR); never served as /404. */
export const NOT_FOUND_PAGE = '404.html';

/** Builds the services the app and the CLI share. No side effects beyond the objects made. */
export function createServices(deps: AppDeps): Services {
  const { config, store, passwords, logger } = deps;
  const clock = deps.clock ?? systemClock;
  if (config.jwtSecret === undefined) throw new TypeError('createServices needs config.jwtSecret');
  const keyring = createKeyring({
    store,
    clock,
    settings: {
      algorithm: config.jwtAlgorithm,
      rootSecret: config.jwtSecret,
      accessTokenTtl: config.accessTokenTtl,
      clockSkew: config.clockSkew,
      publishLeadMs: config.keyPublishLead * 1000,
      rotationPeriodMs: config.keyRotationPeriod * 1000,
    },
    ...(deps.keyChangeBus ? { bus: deps.keyChangeBus } : {}),
  });
  const tokens = createTokens(
    {
      keyring,
      issuer: config.jwtIssuer,
      audience: config.jwtAudience,
      accessTokenTtl: config.accessTokenTtl,
      clockSkew: config.clockSkew,
    },
    clock,
  );
  const revocations = createRevocationList({
    store,
    clock,
    retainMs: (config.accessTokenTtl + config.clockSkew) * 1000,
    ...(deps.revocationBus ? { bus: deps.revocationBus } : {}),
    ...(deps.metrics ? { metrics: deps.metrics } : {}),
  });
  const limiter = deps.limiter ?? createLoginLimiter(config.rateLimit);
  const audit = createAuditLog({ store, clock, logger, retentionDays: config.auditRetention });
  const auth = createAuthService({
    audit,
    store,
    limiter,
    devices: createDeviceTokens(config.jwtSecret, clock),
    tokens,
    passwords,
    revocations,
    clock,
    logger,
    settings: {
      allowSignup: config.allowSignup,
      refreshTokenTtl: config.refreshTokenTtl,
      sessionMaxAge: config.sessionMaxAge,
      refreshReuseGraceMs: config.refreshReuseInterval * 1000,
    },
    ...(deps.metrics ? { metrics: deps.metrics } : {}),
  });
  const health = deps.health ?? createHealth(logger);
  deps.metrics?.track({ health, revocations, ...(passwords.queue ? { hashQueue: passwords.queue } : {}) });
  return { auth, audit, tokens, keyring, revocations, limiter, contract: deps.contract ?? loadContract(), health };
}

/**
 * The pages' headers (and their scripts, styles, fonts and the API docs): helmet's, with a CSP
 * that allows only this origin and no inline script.
 */
const PAGE_HEADERS = helmetHeaders({
  contentSecurityPolicy: {
    useDefaults: false,
    directives: {
      defaultSrc: ["'self'"],
      scriptSrc: ["'self'"],
      styleSrc: ["'self'"],
      imgSrc: ["'self'", 'data:'],
      fontSrc: ["'self'"],
      connectSrc: ["'self'"],
      objectSrc: ["'none'"],
      baseUri: ["'none'"],
      formAction: ["'self'"],
      frameAncestors: ["'none'"],
    },
  },
  // Token responses are cross-origin only through CORS; nothing here is embeddable.
  crossOriginResourcePolicy: { policy: 'same-origin' },
  referrerPolicy: { policy: 'no-referrer' },
  // The legacy header, agreeing with frame-ancestors 'none'.
  xFrameOptions: { action: 'deny' },
  // TLS ends at the proxy, which owns HSTS.
  strictTransportSecurity: false,
});

/**
 * Every other answer (the API's JSON and problems): the headers OWASP's REST Security Cheat Sheet
 * names for API responses (a CSP of `default-src 'none'; frame-ancestors 'none'`, nosniff,
 * X-Frame-Options DENY; Cache-Control: no-store is the handlers'), with no Referer and no
 * cross-origin reads. The page-only headers are left out: they concern HTML documents, which
 * these answers are not, and every answer pays for its header bytes.
 */
const API_HEADERS = helmetHeaders({
  contentSecurityPolicy: { useDefaults: false, directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] } },
  crossOriginResourcePolicy: { policy: 'same-origin' },
  referrerPolicy: { policy: 'no-referrer' },
  xFrameOptions: { action: 'deny' },
  strictTransportSecurity: false,
  crossOriginOpenerPolicy: false,
  originAgentCluster: false,
  xDnsPrefetchControl: false,
  xDownloadOptions: false,
  xPermittedCrossDomainPolicies: false,
  xXssProtection: false,
});

/**
 * Compression, for what `staticFiles` serves and nothing else. The rule is "only what the static
 * route serves", never an API answer (JSON or problem+json): BREACH, a compressed answer that
 * carries a secret (a token, a cookie value) next to text an attacker can influence leaks the
 * secret through its length. The API answers carry tokens and are small anyway; the pages,
 * scripts, styles and the docs bundle (1.7 MB of JavaScript) hold no secret and are the bytes
 * worth saving. It is mounted inside the static route, so the router never runs under it (a
 * static path whose file is missing reaches the router with compression off), and its filter is a
 * second fence: only these text types, never JSON.
 */
const compressStatic: Middleware = compress({
  filter: (type) => /^(text\/(html|css|javascript|plain)|application\/javascript|image\/svg\+xml)\b/i.test(type),
  // Smaller files gain less than the encoding costs.
  threshold: 1024,
  gzip: {},
  br: {},
  // Every browser that takes deflate takes gzip; one encoding fewer to reason about.
  deflate: false,
}) as Middleware;

/**
 * Builds the Koa app. Importing this module does nothing; the app listens only when the caller
 * makes it (see `server.ts`), and tests drive `app.callback()` directly.
 */
export function createApp(deps: AppDeps): AuthApp {
  const { config, logger } = deps;
  const services = createServices(deps);
  // One trusted proxy: the client's address is the last X-Forwarded-For entry, the one the proxy
  // appended; entries left of it are whatever the client sent and would let it dodge the limits.
  const app = new Koa({ proxy: config.trustProxy, maxIpsCount: 1 }) as AuthApp;
  app.services = services;

  const handlers = createHandlers({
    auth: services.auth,
    logger,
    store: deps.store,
    health: services.health,
    keyring: services.keyring,
    discovery: {
      publicUrl: config.publicUrl,
      algorithm: config.jwtAlgorithm,
      // Shorter than the publish lead: a resource server's cached JWKS has every new key before
      // it signs (RFC 9111 max-age; at most 5 minutes).
      jwksMaxAge: Math.min(300, Math.floor(config.keyPublishLead / 2)),
    },
    limiter: services.limiter,
    allowSignup: config.allowSignup,
    cookieSecure: config.cookieSecure,
    sameOrigin: sameOriginGuard({ allowedOrigins: config.corsOrigins }),
  });
  const router = contractRouter({
    contract: services.contract,
    handlers,
    authUse: AUTH_USE,
    ajv: createAjv(services.contract),
    requireToken: requireToken(services),
    bodyLimit: config.bodyLimit,
  });
  // Named, so the metrics count them under these names rather than as unmatched.
  router.get('openapi_json', '/openapi.json', (ctx) => {
    ctx.type = 'application/json';
    ctx.body = services.contract.json;
  });
  router.get('openapi_yaml', '/openapi.yaml', (ctx) => {
    ctx.type = 'application/yaml';
    ctx.body = services.contract.yaml;
  });
  // Relative asset links in the docs page need the trailing slash.
  router.get('docs_redirect', '/docs', (ctx) => ctx.redirect('/docs/'));

  app.use(requestLog({ logger, ...(deps.metrics ? { metrics: deps.metrics } : {}) }));
  app.use(problemResponses({ logger }));
  app.use(securityHeaders(API_HEADERS));
  // A browser that follows a wrong link gets a page to find its way back; API clients keep the
  // 404 problem. Inside problemResponses: it sees the bodiless 404 before that turns it into JSON.
  app.use(notFoundPage({ file: path.join(PUBLIC_DIR, NOT_FOUND_PAGE), headers: PAGE_HEADERS }));
  if (config.corsOrigins.length > 0) {
    const allowed = new Set(config.corsOrigins);
    app.use(
      cors({
        origin: (ctx) => (allowed.has(ctx.get('origin')) ? ctx.get('origin') : ''),
        allowMethods: ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'],
        allowHeaders: ['Authorization', 'Content-Type', 'X-Request-Id'],
        exposeHeaders: ['X-Request-Id', 'WWW-Authenticate', 'Retry-After', 'Link'],
        maxAge: 600,
      }),
    );
  }
  app.use(
    staticFiles(
      [
        { prefix: '/', root: PUBLIC_DIR, hide: [NOT_FOUND_PAGE] },
        // Of each package, only the files the pages and public/docs/index.html load: no source
        // maps, package.json, README or sources (the docs page and its initializer are ours, from
        // the mount above).
        { prefix: '/vendor/bootstrap', root: packageDir('bootstrap', 'dist'), maxAge: 86_400, allow: ['css/bootstrap.min.css', 'js/bootstrap.bundle.min.js'] },
        {
          prefix: '/vendor/bootstrap-icons',
          root: packageDir('bootstrap-icons', 'font'),
          maxAge: 86_400,
          allow: ['bootstrap-icons.min.css', 'fonts/bootstrap-icons.woff2', 'fonts/bootstrap-icons.woff'],
        },
        {
          prefix: '/docs',
          root: packageDir('swagger-ui-dist'),
          maxAge: 86_400,
          allow: ['swagger-ui.css', 'index.css', 'swagger-ui-bundle.js', 'favicon-32x32.png', 'favicon-16x16.png'],
        },
      ],
      { headers: PAGE_HEADERS, compress: compressStatic },
    ),
  );
  app.use(router.routes());
  app.use(allowedMethods(router));

  app.on('error', (error: NodeJS.ErrnoException) => {
    // A client hanging up after the last byte of a static file: noise, not a fault.
    if (error?.code === 'ERR_STREAM_PREMATURE_CLOSE' || error?.code === 'ECONNRESET') return;
    // Node's HTTP parser refusing what a client sent (HPE_*): the client's fault, not ours.
    if (typeof error?.code === 'string' && error.code.startsWith('HPE_')) {
      logger.warn({ code: error.code }, 'malformed HTTP from a client');
      return;
    }
    logger.error({ err: error }, 'unhandled app error');
  });
  return app;
}
