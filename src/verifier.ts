import { createPublicKey, type JsonWebKey, type KeyObject, verify } from 'node:crypto';
import jwt from 'jsonwebtoken';
import type { Context, Middleware, Next } from 'koa';
import koaJwt from 'koa-jwt';

// Self-contained on purpose: other services import this file alone (the package ships it as
// `koa-jwt-auth-server/verifier`), so it imports nothing of the server: node:, koa-jwt and
// jsonwebtoken (dependencies of the package) and Koa's types only.
//
// As the server's own guard (src/http/require-token.ts), koa-jwt checks the ES256 tokens: its
// `secret` is a function of the token's header that hands jsonwebtoken the KeyObject of the
// header's kid from this verifier's JWKS cache, once the key's alg is the header's. EdDSA tokens
// are checked here over node:crypto, because jsonwebtoken 9 (under koa-jwt) can neither sign nor
// verify EdDSA ("Unknown key type "ed25519"", and its jwa has no EdDSA:
// auth0/node-jsonwebtoken#987, auth0/node-jwa#38).
//
// The JWKS is read here, not by jwks-rsa's koaJwtSecret: jwks-rsa 3.2.2 reads EC P-256 and OKP
// Ed25519 JWKs (through jose 4), but every token with a kid it has not cached fetches the whole
// JWKS again (failures are not cached), its only brake is a per-minute token bucket
// (`jwksRequestsPerMinute`, whole numbers, no cooldown in ms), it hands back a PEM without
// checking the key's `alg` against the token's, and a token without kid gets the only key when the
// JWKS holds one. Everything checked before the signature (size, encoding, header parameters,
// algorithm, kid, the key lookup with its fetches and 503s) is done here, in front of both paths,
// so both answer alike.

/** The algorithms this verifier knows: ECDSA P-256 with SHA-256 (RFC 7518 §3.4), Ed25519 (RFC 8037 §3.1). */
export type VerifierAlgorithm = 'ES256' | 'EdDSA';

export interface VerifierOptions {
  /** Where the auth server publishes its keys, e.g. `https://auth.example.com/.well-known/jwks.json`. */
  jwksUri: string;
  /** The `iss` a token must carry. */
  issuer: string;
  /** The `aud` a token must carry (one of them, for a list). */
  audience: string | string[];
  /** Accepted algorithms; default both. HS* and `none` are never accepted. */
  algorithms?: VerifierAlgorithm[];
  /** Milliseconds a fetched JWKS is used before it is fetched again; default 10 minutes. */
  cacheMaxAge?: number;
  /**
   * Milliseconds between two JWKS fetches at least, whatever the tokens say; default 30 s. A token
   * with a kid the JWKS does not hold fetches it again only once this has passed since the last
   * fetch, so made-up kids cannot make this service hammer the auth server.
   */
  cooldown?: number;
  /** Milliseconds a JWKS fetch may take, body included; default 5 s. */
  timeout?: number;
  /** Seconds of tolerated clock skew on `exp`, `nbf` and `iat`; default 0. */
  clockTolerance?: number;
  /** The `ctx.state` key the verified claims land in; default `'user'`. */
  key?: string;
  /** The source of time (milliseconds since the epoch); default `Date.now`. For tests. */
  clock?: { now(): number };
}

/** The claims of an accepted token, frozen. */
export type VerifiedClaims = Readonly<Record<string, unknown>>;

const SUPPORTED: readonly VerifierAlgorithm[] = ['ES256', 'EdDSA'];
const DEFAULT_CACHE_MAX_AGE = 10 * 60_000;
const DEFAULT_COOLDOWN = 30_000;
const DEFAULT_TIMEOUT = 5_000;
/** A JWKS of a few keys is a few KB; a larger answer is not one. */
const MAX_JWKS_BYTES = 256 * 1024;
const MAX_KEYS = 100;
const MAX_TOKEN_CHARS = 8 * 1024;
const MAX_KID_CHARS = 256;
const PROBLEM_TYPE = 'application/problem+json';
/**
 * Header parameters that point at or carry a key (RFC 7515 §4.1.2-4.1.6), and `crit` (§4.1.11:
 * a recipient must refuse extensions it does not understand; this one understands none). The key
 * comes from the configured JWKS only, so a token naming another source is a forgery or a
 * mistake: it is refused before any fetch (RFC 8725 §3.10).
 */
const REFUSED_HEADER_PARAMETERS = ['jku', 'x5u', 'jwk', 'x5c', 'crit'];

interface VerificationKey {
  alg: VerifierAlgorithm;
  key: KeyObject;
}

type Lookup = { key: VerificationKey } | { unknown: true } | { unavailable: true; retryAfter: number };

interface KeySource {
  /** The key of `kid`, fetching the JWKS when it is stale or does not hold it (once per cooldown). */
  lookup(kid: string): Promise<Lookup>;
  /** The key of `kid` in the JWKS fetched last, without fetching: for a kid `lookup` has just found. */
  cached(kid: string): VerificationKey | undefined;
}

interface Refusal {
  status: 401 | 503;
  code: 'missing_token' | 'invalid_token' | 'jwks_unavailable';
  detail: string;
  retryAfter?: number;
}

const INVALID = 'The access token is invalid.';
const EXPIRED = 'The access token has expired.';
const invalid = (detail = INVALID): Refusal => ({ status: 401, code: 'invalid_token', detail });

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The key a JWK describes, when it is a public signing key of an algorithm in `algorithms`. */
function importKey(jwk: unknown, algorithms: readonly VerifierAlgorithm[]): [string, VerificationKey] | undefined {
  if (!isObject(jwk)) return undefined;
  const { kid, kty, crv, x, y, use, alg } = jwk;
  if (typeof kid !== 'string' || kid === '' || kid.length > MAX_KID_CHARS) return undefined;
  if (use !== undefined && use !== 'sig') return undefined;
  if (jwk['key_ops'] !== undefined && !(Array.isArray(jwk['key_ops']) && jwk['key_ops'].includes('verify'))) return undefined;
  let keyAlg: VerifierAlgorithm;
  let material: JsonWebKey;
  // Only the public members are imported: a JWK that also carries `d` is a mistake on the other
  // side, but its private part never reaches this process's key objects.
  if (kty === 'EC' && crv === 'P-256' && typeof x === 'string' && typeof y === 'string') {
    keyAlg = 'ES256';
    material = { kty, crv, x, y };
  } else if (kty === 'OKP' && crv === 'Ed25519' && typeof x === 'string') {
    keyAlg = 'EdDSA';
    material = { kty, crv, x };
  } else {
    return undefined;
  }
  // Each curve serves one algorithm here; a key that names another one is not used at all.
  if (alg !== undefined && alg !== keyAlg) return undefined;
  if (!algorithms.includes(keyAlg)) return undefined;
  try {
    return [kid, { alg: keyAlg, key: createPublicKey({ key: material, format: 'jwk' }) }];
  } catch {
    return undefined; // not a point on the curve, or not base64url: skipped like any unusable key
  }
}

/** The body of `response`, refused past `limit` bytes. */
async function readBounded(response: Response, limit: number): Promise<string> {
  const declared = Number(response.headers.get('content-length'));
  if (declared > limit) throw new Error(`the JWKS is larger than ${limit} bytes`);
  if (!response.body) return '';
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel();
      throw new Error(`the JWKS is larger than ${limit} bytes`);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Fetches the JWKS and returns its usable keys by kid. Throws when there is no JWKS to read. */
async function fetchKeys(uri: string, timeout: number, algorithms: readonly VerifierAlgorithm[]): Promise<Map<string, VerificationKey>> {
  // No redirects: the keys come from the configured address, not from wherever it points.
  const response = await fetch(uri, {
    redirect: 'error',
    signal: AbortSignal.timeout(timeout),
    headers: { accept: 'application/jwk-set+json, application/json' },
  });
  if (!response.ok) {
    await response.body?.cancel();
    throw new Error(`the JWKS answered ${response.status}`);
  }
  const document: unknown = JSON.parse(await readBounded(response, MAX_JWKS_BYTES));
  if (!isObject(document) || !Array.isArray(document['keys'])) throw new Error('the JWKS has no "keys" array');
  const keys = new Map<string, VerificationKey>();
  const ambiguous = new Set<string>();
  for (const jwk of document['keys'].slice(0, MAX_KEYS)) {
    const imported = importKey(jwk, algorithms);
    if (!imported) continue;
    const [kid, key] = imported;
    // Two keys under one kid: which one signed is unknowable, so neither is used.
    if (keys.has(kid)) ambiguous.add(kid);
    keys.set(kid, key);
  }
  for (const kid of ambiguous) keys.delete(kid);
  return keys;
}

/**
 * The keys of one JWKS: fetched on first use, used for `cacheMaxAge`, fetched again for a kid it
 * does not hold, and never more than once per `cooldown`; concurrent lookups share one fetch.
 */
function createKeySource(opts: {
  uri: string;
  timeout: number;
  cacheMaxAge: number;
  cooldown: number;
  algorithms: readonly VerifierAlgorithm[];
  now: () => number;
}): KeySource {
  let keys: Map<string, VerificationKey> | undefined;
  let fetchedAt = 0;
  let lastAttempt = Number.NEGATIVE_INFINITY;
  let lastFailed = false;
  let inFlight: Promise<void> | undefined;

  const fresh = () => keys !== undefined && opts.now() - fetchedAt < opts.cacheMaxAge;
  const retryAfter = () => Math.max(1, Math.ceil((lastAttempt + opts.cooldown - opts.now()) / 1000));

  function refresh(): Promise<void> {
    lastAttempt = opts.now();
    inFlight = fetchKeys(opts.uri, opts.timeout, opts.algorithms)
      .then(
        (fetched) => {
          keys = fetched;
          fetchedAt = opts.now();
          lastFailed = false;
        },
        () => {
          lastFailed = true;
        },
      )
      .finally(() => {
        inFlight = undefined;
      });
    return inFlight;
  }

  async function lookup(kid: string): Promise<Lookup> {
    const known = fresh() ? keys?.get(kid) : undefined;
    if (known) return { key: known };
    if (inFlight) await inFlight;
    else if (opts.now() - lastAttempt >= opts.cooldown) await refresh();
    if (!fresh()) return { unavailable: true, retryAfter: retryAfter() };
    const key = keys?.get(kid);
    if (key) return { key };
    // Cannot tell an unknown kid from a key published since the last good fetch while the JWKS
    // does not answer: that is this service's trouble (503), not a bad token.
    return lastFailed ? { unavailable: true, retryAfter: retryAfter() } : { unknown: true };
  }

  return { lookup, cached: (kid) => keys?.get(kid) };
}

/** The JSON object that `part` encodes, or undefined. Only canonical base64url is read. */
function decodePart(part: string): Record<string, unknown> | undefined {
  const bytes = Buffer.from(part, 'base64url');
  // Node's decoder skips characters outside the alphabet and ignores spare bits; a text that
  // does not round-trip is not the encoding of these bytes.
  if (bytes.toString('base64url') !== part) return undefined;
  try {
    const value: unknown = JSON.parse(bytes.toString('utf8'));
    return isObject(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

/** The Ed25519 signature (R || S, RFC 8037 §3.1) over the signing input, by node:crypto. */
function checkEdDsaSignature(key: KeyObject, signingInput: string, signature: Buffer): boolean {
  try {
    return verify(null, Buffer.from(signingInput, 'ascii'), key, signature);
  } catch {
    return false; // OpenSSL refusing the bytes is a bad signature too, not a 500
  }
}

interface Settings {
  issuer: string;
  audiences: readonly string[];
  algorithms: readonly VerifierAlgorithm[];
  clockTolerance: number;
  now: () => number;
  keys: KeySource;
}

type Outcome = { claims: VerifiedClaims } | { refusal: Refusal };

/** A token that passed every check made before the signature, with the key its kid names. */
interface Checked {
  token: string;
  key: VerificationKey;
  signingInput: string;
  signature: Buffer;
  payload: Record<string, unknown>;
}

/** What is checked before the signature, for both algorithms: the token, or why it is refused. */
async function precheck(token: string, s: Settings): Promise<{ checked: Checked } | { refusal: Refusal }> {
  const refuse = () => ({ refusal: invalid() });
  if (token.length > MAX_TOKEN_CHARS) return refuse();
  const parts = token.split('.');
  if (parts.length !== 3 || parts.some((p) => p === '')) return refuse(); // `none` has an empty signature
  const [encodedHeader, encodedPayload, encodedSignature] = parts as [string, string, string];
  const header = decodePart(encodedHeader);
  const payload = decodePart(encodedPayload);
  if (!header || !payload) return refuse();
  const { alg, kid } = header;
  // The header's alg is only ever compared with the pinned list and with the key's own alg, never
  // used to choose how to verify: HS256 over the public key's bytes (alg confusion) cannot pass.
  if (typeof alg !== 'string' || !(s.algorithms as readonly string[]).includes(alg)) return refuse();
  if (REFUSED_HEADER_PARAMETERS.some((name) => name in header)) return refuse();
  // Every token of the auth server names its key; without kid there is nothing to look up.
  if (typeof kid !== 'string' || kid === '' || kid.length > MAX_KID_CHARS) return refuse();

  const found = await s.keys.lookup(kid);
  if ('unavailable' in found) {
    return {
      refusal: {
        status: 503,
        code: 'jwks_unavailable',
        detail: 'The keys that verify access tokens cannot be fetched right now.',
        retryAfter: found.retryAfter,
      },
    };
  }
  if ('unknown' in found) return refuse();
  const { key } = found;
  if (key.alg !== alg) return refuse();
  const signature = Buffer.from(encodedSignature, 'base64url');
  if (signature.toString('base64url') !== encodedSignature) return refuse();
  // Both are 64 bytes: r || s for ES256 (RFC 7518 §3.4, not DER), R || S for Ed25519.
  if (signature.length !== 64) return refuse();
  return { checked: { token, key, signingInput: `${encodedHeader}.${encodedPayload}`, signature, payload } };
}

/**
 * Registered claims (RFC 7519 §4.1), as jsonwebtoken checks them, with `exp` required (every token
 * of the auth server has one, and a token without one would never expire) and `iat` not ahead.
 * Undefined when they pass. `exp` comes first: an expired token is answered as expired.
 */
function checkClaims(payload: Record<string, unknown>, s: Settings): Refusal | undefined {
  const now = Math.floor(s.now() / 1000);
  const { exp, nbf, iat, iss, aud } = payload;
  if (typeof exp !== 'number' || !Number.isFinite(exp)) return invalid();
  if (now >= exp + s.clockTolerance) return invalid(EXPIRED);
  if (nbf !== undefined && (typeof nbf !== 'number' || nbf > now + s.clockTolerance)) return invalid();
  if (iat !== undefined && (typeof iat !== 'number' || iat > now + s.clockTolerance)) return invalid();
  if (iss !== s.issuer) return invalid();
  const audiences = typeof aud === 'string' ? [aud] : Array.isArray(aud) ? aud : [];
  if (!audiences.some((a) => typeof a === 'string' && s.audiences.includes(a))) return invalid();
  return undefined;
}

/** EdDSA: signature over node:crypto (jsonwebtoken 9 has no EdDSA), then the claims. */
function verifyEdDsa(c: Checked, s: Settings): Outcome {
  if (!checkEdDsaSignature(c.key.key, c.signingInput, c.signature)) return { refusal: invalid() };
  const refusal = checkClaims(c.payload, s);
  return refusal ? { refusal } : { claims: Object.freeze(c.payload) };
}

/** The token koa-jwt is to verify, set by the verifier on the context it hands koa-jwt. */
const CHECKED_TOKEN = Symbol('checkedToken');
type GuardContext = Context & { [CHECKED_TOKEN]?: string };

/** Errors jsonwebtoken raises for the claims, after it accepted the signature. */
const isClaimsError = (e: unknown) => {
  const { name, message } = (e ?? {}) as { name?: unknown; message?: unknown };
  return name === 'TokenExpiredError' || name === 'NotBeforeError' || message === 'invalid nbf value';
};

/**
 * ES256 through koa-jwt: jsonwebtoken.verify with the JWKS key, the algorithm pinned to ES256,
 * the issuer, audience and clock tolerance, on the verifier's clock; then what jsonwebtoken leaves
 * alone (exp required, iat not ahead) by checkClaims.
 */
function es256Verifier(s: Settings): (ctx: Context, c: Checked) => Promise<Outcome> {
  // koa-jwt hands this whole object to jsonwebtoken.verify as its options.
  const options = {
    // koa-jwt calls this with the token's decoded header. The precheck has just looked the kid
    // up (fetching the JWKS if need be), so the key is read from the cache without a fetch.
    secret: async (header: jwt.JwtHeader): Promise<KeyObject> => {
      const key = typeof header.kid === 'string' ? s.keys.cached(header.kid) : undefined;
      if (!key) throw new jwt.JsonWebTokenError('unknown kid');
      // RFC 8725 §3.1: the key's algorithm, whatever the header says.
      if (key.alg !== header.alg || key.alg !== 'ES256') throw new jwt.JsonWebTokenError('alg does not match the key');
      return key.key;
    },
    // Exactly the token the precheck passed (koa-jwt's own header parsing is stricter about spaces).
    getToken: (ctx: GuardContext) => ctx[CHECKED_TOKEN] ?? null,
    key: 'jwt',
    // Failures come back in state.jwtOriginalError instead of koa-jwt's own 401.
    passthrough: true,
    algorithms: ['ES256'],
    issuer: s.issuer,
    audience: [...s.audiences],
    clockTolerance: s.clockTolerance,
    // { header, payload, signature }: the claims are the payload.
    complete: true,
  };
  // A getter, read on every verification (jsonwebtoken copies its options), so the verifier's
  // clock rules, as in src/services/tokens.ts. Copying this object would freeze it.
  Object.defineProperty(options, 'clockTimestamp', { enumerable: true, get: () => Math.floor(s.now() / 1000) });
  const guard = koaJwt(options as unknown as koaJwt.Options);

  return async (ctx, c) => {
    // koa-jwt reads its secret from ctx.state.secret in preference to its option, and leaves its
    // results in ctx.state: it gets a context of its own, with a fresh state, so the key is the
    // JWKS's whatever the app put there, and what is read below is this token's verdict alone.
    const scope = Object.create(ctx) as GuardContext;
    scope.state = {};
    scope[CHECKED_TOKEN] = c.token;
    await guard(scope, () => Promise.resolve());
    const failure: unknown = scope.state['jwtOriginalError'];
    if (failure !== undefined) {
      // jsonwebtoken looks at nbf before exp; this verifier answers an expired token as expired.
      return { refusal: (isClaimsError(failure) ? checkClaims(c.payload, s) : undefined) ?? invalid() };
    }
    const decoded = scope.state['jwt'] as jwt.Jwt | undefined;
    const payload = decoded?.payload;
    if (!isObject(payload)) return { refusal: invalid() }; // fails closed
    const refusal = checkClaims(payload, s);
    return refusal ? { refusal } : { claims: Object.freeze(payload) };
  };
}

/** Answers the refusal as an RFC 9457 problem. */
function answer(ctx: Context, refusal: Refusal): void {
  ctx.status = refusal.status;
  if (refusal.status === 401) {
    // RFC 6750 §3: a challenge on every 401; §3.1: no error code when no token was sent.
    ctx.set('WWW-Authenticate', refusal.code === 'missing_token' ? 'Bearer' : `Bearer error="invalid_token", error_description="${refusal.detail}"`);
  }
  if (refusal.retryAfter !== undefined) ctx.set('Retry-After', String(refusal.retryAfter));
  ctx.type = PROBLEM_TYPE;
  ctx.body = {
    type: `urn:problem-type:${refusal.code}`,
    title: refusal.status === 401 ? 'Unauthorized' : 'Service Unavailable',
    status: refusal.status,
    detail: refusal.detail,
    code: refusal.code,
  };
}

function checkOptions(options: VerifierOptions): void {
  const problems: string[] = [];
  const nonEmpty = (v: unknown) => typeof v === 'string' && v !== '';
  let url: URL | undefined;
  try {
    url = new URL(options.jwksUri);
  } catch {
    // reported below
  }
  if (!url || (url.protocol !== 'https:' && url.protocol !== 'http:')) problems.push('jwksUri must be an http(s) URL');
  if (!nonEmpty(options.issuer)) problems.push('issuer must be a non-empty string');
  const audiences = Array.isArray(options.audience) ? options.audience : [options.audience];
  if (audiences.length === 0 || !audiences.every(nonEmpty)) problems.push('audience must be a non-empty string or a non-empty list of them');
  if (options.algorithms !== undefined) {
    const algorithms: unknown[] = options.algorithms;
    if (algorithms.length === 0 || !algorithms.every((a) => (SUPPORTED as readonly unknown[]).includes(a))) {
      problems.push(`algorithms must be a non-empty list of ${SUPPORTED.join(', ')} (HS* and none are never accepted)`);
    }
  }
  for (const name of ['cacheMaxAge', 'cooldown', 'timeout', 'clockTolerance'] as const) {
    const v = options[name];
    if (v !== undefined && (typeof v !== 'number' || !Number.isFinite(v) || v < 0)) problems.push(`${name} must be a number >= 0`);
  }
  if (options.timeout === 0) problems.push('timeout must be more than 0');
  if (options.key !== undefined && !nonEmpty(options.key)) problems.push('key must be a non-empty string');
  if (problems.length > 0) throw new TypeError(`jwtVerifier: ${problems.join('; ')}`);
}

/**
 * Koa middleware that accepts the access tokens of a koa-jwt-auth-server (ES256 or EdDSA, with a
 * `kid`, keys from its JWKS) and puts their claims in `ctx.state[key]`. Everything else is
 * answered here with an `application/problem+json` 401 and a Bearer challenge
 * (`error="invalid_token"` when a token was sent), or a 503 with `Retry-After` when the JWKS
 * cannot be fetched and holds no usable key for the token. Errors thrown downstream pass through.
 *
 * Keys: the JWKS is fetched on the first token, used for `cacheMaxAge`, and fetched again when a
 * token names a kid it does not hold, at most once per `cooldown`. A key rotation works when the
 * auth server publishes the new key before it signs with it: the first token with the new kid
 * fetches the JWKS (or waits at most `cooldown` for the next fetch). While the JWKS is down, the
 * keys fetched before keep working until `cacheMaxAge` has passed since that fetch.
 *
 * @example
 * app.use(jwtVerifier({
 *   jwksUri: 'https://auth.example.com/.well-known/jwks.json',
 *   issuer: 'https://auth.example.com',
 *   audience: 'https://api.example.com',
 * }));
 */
export function jwtVerifier(options: VerifierOptions): Middleware {
  checkOptions(options);
  const clock = options.clock ?? { now: () => Date.now() };
  const now = () => clock.now();
  const algorithms = [...(options.algorithms ?? SUPPORTED)];
  const settings: Settings = {
    issuer: options.issuer,
    audiences: Array.isArray(options.audience) ? [...options.audience] : [options.audience],
    algorithms,
    clockTolerance: options.clockTolerance ?? 0,
    now,
    keys: createKeySource({
      uri: options.jwksUri,
      timeout: options.timeout ?? DEFAULT_TIMEOUT,
      cacheMaxAge: options.cacheMaxAge ?? DEFAULT_CACHE_MAX_AGE,
      cooldown: options.cooldown ?? DEFAULT_COOLDOWN,
      algorithms,
      now,
    }),
  };
  const stateKey = options.key ?? 'user';
  const verifyEs256 = es256Verifier(settings);

  /** The claims of `token`, or why it is refused. */
  const verifyToken = async (ctx: Context, token: string): Promise<Outcome> => {
    const pre = await precheck(token, settings);
    if ('refusal' in pre) return pre;
    return pre.checked.key.alg === 'ES256' ? verifyEs256(ctx, pre.checked) : verifyEdDsa(pre.checked, settings);
  };

  return async function jwtVerifier(ctx: Context, next: Next) {
    const header = ctx.get('authorization');
    if (!header) {
      answer(ctx, { status: 401, code: 'missing_token', detail: 'An access token is required (Authorization: Bearer <token>).' });
      return;
    }
    // RFC 6750 §2.1: the scheme is case-insensitive; one token after it.
    const match = /^Bearer +(\S+) *$/i.exec(header);
    const outcome = match?.[1] ? await verifyToken(ctx, match[1]) : { refusal: invalid() };
    if ('refusal' in outcome) {
      answer(ctx, outcome.refusal);
      return;
    }
    ctx.state[stateKey] = outcome.claims;
    // Outside any try: a downstream failure is never turned into a 401.
    await next();
  };
}
