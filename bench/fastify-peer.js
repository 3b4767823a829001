'use strict';
// @ts-check
/**
 * The equal-feature peer of the benchmark: GET /user on fastify 5 doing what the server does for
 * that request, each part with the fastify ecosystem's own tool (bench/NOTES.md, "The fastify
 * peer", lists what is equal and what is not):
 *
 * - @fastify/jwt (fast-jwt) verifies the Bearer token: HS256 only, the server's key (a Buffer of
 *   the same bytes), its issuer and audience, `exp` required, the same clock skew, and fast-jwt's
 *   cache of verdicts (the server remembers its verdicts too); then the claim checks the server
 *   makes after verification (its own `checkDecoded`: lifetime cap, `iat` not ahead, claim types;
 *   fast-jwt refuses `crit` itself), and a revocation lookup on the session id (`Set.has`);
 * - @fastify/helmet with the options that give the server's API headers;
 * - a request id (the client's `X-Request-Id` when safe, else a UUID) echoed in `X-Request-Id`,
 *   and one request line per answer with the server's fields, through the server's own logger
 *   factory (same level, same redaction, same buffered stdout destination);
 * - the same JSON, with `Cache-Control: no-store`, and the same 401 problem documents and
 *   Bearer challenges.
 *
 * Env: PORT (0 for any), HOST (127.0.0.1), JWT_KEY (required: the server's HS256 key, base64), JWT_ISSUER, JWT_AUDIENCE,
 * CLOCK_SKEW, ACCESS_TOKEN_TTL (the server's defaults), LOG_LEVEL (info), PEER_REVOKED_SIDS
 * (session ids to treat as revoked, comma-separated). Needs dist/ (npm run build).
 */
const http = require('node:http');
const { randomBytes, randomUUID } = require('node:crypto');
const path = require('node:path');
const Fastify = require('fastify');
const fastifyHelmet = require('@fastify/helmet');
const fastifyJwt = require('@fastify/jwt');

const DIST = path.join(__dirname, '..', 'dist');
/** @type {{ createLogger: (level: string) => import('pino').Logger }} */
const { createLogger } = require(path.join(DIST, 'http', 'request-log.js'));
/** @type {{ checkDecoded: (decoded: object, bounds: { maxLifetime: number, clockSkew: number, now: number }) => object }} */
const { checkDecoded } = require(path.join(DIST, 'services', 'tokens.js'));

const env = process.env;
const secret = env['JWT_KEY'];
if (!secret) {
  process.stderr.write('JWT_KEY is required\n');
  process.exit(1);
}
const issuer = env['JWT_ISSUER'] || 'koa-jwt-auth-server';
const audience = env['JWT_AUDIENCE'] || 'koa-jwt-auth-server';
const clockSkew = Number(env['CLOCK_SKEW'] || 30);
const accessTokenTtl = Number(env['ACCESS_TOKEN_TTL'] || 900);
const logLevel = env['LOG_LEVEL'] || 'info';

// The server keeps revoked session ids in memory and looks the token's `sid` up on every request;
// here a Set with a few unrelated entries, plus any the caller names.
const revoked = new Set([
  ...Array.from({ length: 8 }, () => randomBytes(16).toString('base64url')),
  ...(env['PEER_REVOKED_SIDS'] ?? '').split(',').filter(Boolean),
]);

// The server's socket limits at their defaults (src/config.ts, src/http/listen.ts).
const HTTP_LIMITS = { headersTimeout: 10_000, requestTimeout: 30_000, keepAliveTimeout: 65_000, maxConnections: 2_048 };

const SAFE_ID = /^[A-Za-z0-9._-]{1,64}$/;

const logger = createLogger(logLevel);
// As the server's request line: fixed keys, none a redact path, so a child without redaction.
const lines = logger.child({}, { redact: [] });

const app = Fastify({
  loggerInstance: logger,
  // One line per answer, written below with the server's fields, instead of fastify's two.
  disableRequestLogging: true,
  genReqId(req) {
    const given = req.headers['x-request-id'];
    return typeof given === 'string' && SAFE_ID.test(given) ? given : randomUUID();
  },
  serverFactory(handler) {
    const server = http.createServer(
      {
        headersTimeout: HTTP_LIMITS.headersTimeout,
        requestTimeout: HTTP_LIMITS.requestTimeout,
        keepAliveTimeout: HTTP_LIMITS.keepAliveTimeout,
        connectionsCheckingInterval: 1_000,
      },
      handler,
    );
    server.maxConnections = HTTP_LIMITS.maxConnections;
    return server;
  },
});

// The server's API header set (API_HEADERS in src/app.ts); bench-smoke.test.ts compares them.
app.register(fastifyHelmet, {
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

app.register(fastifyJwt, {
  // The server's current HS256 key (its bytes, read from its store by the bench). (A KeyObject
  // is read by @fastify/jwt as a { private, public } pair, so a Buffer it is.)
  secret: Buffer.from(secret, 'base64'),
  sign: { algorithm: 'HS256' },
  verify: {
    algorithms: ['HS256'],
    allowedIss: issuer,
    allowedAud: audience,
    requiredClaims: ['exp', 'iat', 'sub', 'sid'],
    clockTolerance: clockSkew * 1000,
    // fast-jwt's memory of verdicts, as large as the server's (1,000 accepted texts). Refusals are
    // remembered too (as the server does), except those time can undo: expired, not yet valid.
    cache: 1_000,
    errorCacheTTL: (/** @type {{ code?: string }} */ error) =>
      error.code === 'FAST_JWT_EXPIRED' || error.code === 'FAST_JWT_INACTIVE' ? -clockSkew * 1000 - 1 : 600_000,
  },
});

app.addHook('onRequest', (request, reply, done) => {
  reply.header('x-request-id', request.id);
  done();
});

app.addHook('onResponse', (request, reply, done) => {
  if (lines.isLevelEnabled('info')) {
    const url = request.url;
    const q = url.indexOf('?');
    lines.info(
      {
        reqId: request.id,
        method: request.method,
        path: q === -1 ? url : url.slice(0, q),
        status: reply.statusCode,
        ms: Math.round(reply.elapsedTime * 10) / 10,
      },
      'request',
    );
  }
  done();
});

const EXPIRED_DETAIL = 'The access token has expired.';
const REVOKED_DETAIL = 'The access token has been revoked.';
const INVALID_DETAIL = 'The access token is invalid.';
const MISSING_DETAIL = 'An access token is required (Authorization: Bearer <token>).';

/**
 * The server's 401: problem+json and a Bearer challenge (RFC 6750 §3).
 * @param {import('fastify').FastifyReply} reply
 * @param {'missing_token' | 'invalid_token'} code
 * @param {string} detail
 */
function unauthorized(reply, code, detail) {
  reply
    .code(401)
    .header('www-authenticate', code === 'missing_token' ? 'Bearer realm="api"' : `Bearer realm="api", error="invalid_token", error_description="${detail}"`)
    .header('content-type', 'application/problem+json')
    // A Buffer, since fastify adds a charset to a string body's type, which the server does not send.
    .send(Buffer.from(JSON.stringify({ type: `urn:problem-type:${code}`, title: 'Unauthorized', status: 401, detail, code })));
  return reply;
}

/**
 * The guard: the token verified by @fastify/jwt, the claims checked as the server checks them,
 * and the session looked up in the revocation set.
 * @param {import('fastify').FastifyRequest} request
 * @param {import('fastify').FastifyReply} reply
 */
async function requireToken(request, reply) {
  if (!request.headers.authorization) return unauthorized(reply, 'missing_token', MISSING_DETAIL);
  /** @type {any} */
  let claims;
  try {
    claims = await request.jwtVerify();
    checkDecoded({ header: {}, payload: claims }, { maxLifetime: accessTokenTtl, clockSkew, now: Math.floor(Date.now() / 1000) });
  } catch (error) {
    // A header that is there but not `Bearer <token>` is an invalid token, as on the server.
    const code = /** @type {{ code?: string }} */ (error).code;
    return unauthorized(reply, 'invalid_token', code === 'FST_JWT_AUTHORIZATION_TOKEN_EXPIRED' ? EXPIRED_DETAIL : INVALID_DETAIL);
  }
  if (revoked.has(claims.sid)) return unauthorized(reply, 'invalid_token', REVOKED_DETAIL);
  return undefined;
}

app.get(
  '/user',
  {
    onRequest: requireToken,
    // fastify serializes with a schema where it has one (fast-json-stringify): the peer at its best.
    schema: {
      response: {
        200: {
          type: 'object',
          properties: { id: { type: 'string' }, name: { type: 'string' }, role: { type: 'string' } },
          required: ['id', 'name', 'role'],
        },
      },
    },
  },
  (request, reply) => {
    const claims = /** @type {any} */ (request.user);
    reply.header('cache-control', 'no-store');
    return { id: claims.sub, name: claims.name, role: claims.role };
  },
);

app.get('/healthz', (request, reply) => {
  reply.header('cache-control', 'no-store');
  return { status: 'ok' };
});

app.listen({ port: Number(env['PORT'] ?? 0), host: env['HOST'] || '127.0.0.1' }).catch((error) => {
  process.stderr.write(`fastify peer failed to start: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});

const stop = () => {
  app.close().then(
    () => {
      logger.flush();
      process.exit(0);
    },
    () => process.exit(1),
  );
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
