import { createCipheriv, createDecipheriv, createHash, hkdfSync, type KeyObject, randomBytes, sign as cryptoSign, verify as cryptoVerify } from 'node:crypto';
import jwt from 'jsonwebtoken';
import { LRUCache } from 'lru-cache';
import type { Clock } from '../clock';
import type { Role } from '../store/store';
import { type KeyLookup, staticHs256Keyring } from './signing-keys';

/** The claims of an access token as this server issues them. */
export interface AccessClaims {
  sub: string;
  name: string;
  role: Role;
  /** The session (refresh family) the token belongs to. */
  sid: string;
  iat: number;
  exp: number;
  iss: string;
  aud: string;
  jti: string;
}

export interface TokenSettings {
  /** The signing keys. */
  keyring?: KeyLookup;
  /** Instead of `keyring`: one fixed HS256 key (tools and tests). */
  secret?: string;
  issuer: string;
  audience: string;
  /** Seconds. */
  accessTokenTtl: number;
  /** Seconds of tolerated clock skew. */
  clockSkew: number;
  /** Verified access tokens remembered for {@link Tokens.cachedAccess}; 0 turns the cache off. */
  verifyCacheSize?: number;
}

/** Enough for the tokens in use at once on a busy instance; an entry is well under 1 KB. */
export const DEFAULT_VERIFY_CACHE_SIZE = 1_000;

/** Header parameters that point at or carry a key (RFC 7515 §4.1.2-4.1.6): never used, and refused. */
const KEY_BEARING_HEADERS = ['jku', 'jwk', 'x5u', 'x5c'] as const;

/**
 * A token whose kid names no key this instance knows (now): refused, but not remembered as
 * refused, since a key another instance just made is learned at the next sync.
 */
export class UnknownKeyError extends jwt.JsonWebTokenError {
  readonly unknownKid = true;
}

export interface Tokens {
  readonly keyring: KeyLookup;
  /**
   * The key that verifies a token with this header: looked up by `kid` among the keys that may
   * verify now, its algorithm equal to the header's. Throws a jsonwebtoken error when there is
   * none: no kid, an unknown one, another alg, or a header that carries or points at a key.
   */
  keyFor(header: jwt.JwtHeader): KeyObject;
  /**
   * Verifies an EdDSA token as `jsonwebtoken.verify` with {@link verifyOptions} does for the
   * other algorithms (jsonwebtoken 9 has no EdDSA): signature by {@link keyFor}, exp, nbf, iss
   * and aud, throwing jsonwebtoken's error classes. Returns the complete token.
   */
  verifyEdDsa(token: string): jwt.Jwt;
  /** Signs an access token; it never outlives `notAfter` (ms), the end of its session. */
  signAccess(user: { id: string; name: string; role: Role }, sessionId: string, notAfter: number): { token: string; expiresIn: number };
  /**
   * Fresh options for `jsonwebtoken.verify` (koa-jwt passes its options through): algorithm,
   * issuer, audience and clock skew pinned; add to the object rather than copy it, or its clock
   * stops.
   */
  verifyOptions(): jwt.VerifyOptions & { complete: true };
  /**
   * Takes a token whose signature and registered claims `jsonwebtoken.verify` with
   * {@link verifyOptions} has just accepted (`decoded` is its complete result): checks what
   * jsonwebtoken leaves alone ({@link checkDecoded}), remembers the verdict for
   * {@link cachedAccess}, and returns the claims, frozen. Throws when the check fails.
   */
  acceptVerified(token: string, decoded: jwt.Jwt): Readonly<AccessClaims>;
  /**
   * The claims of a token accepted before, by its exact text, while its `exp` is still ahead;
   * otherwise undefined, and the token must be verified in full. Revocation is the caller's to
   * check, on every request.
   */
  cachedAccess(token: string): Readonly<AccessClaims> | undefined;
}

/** A random opaque token of 256 bits, base64url. */
export function randomToken(): string {
  return randomBytes(32).toString('base64url');
}

export function randomId(): string {
  return randomBytes(16).toString('base64url');
}

/** Refresh tokens are stored only as this hash. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

// The key that seals a refresh token's successor, derived from the token itself (256 random
// bits, so HKDF needs no salt): only its holder can open what the store keeps, and a copy of the
// database alone yields no usable token.
const childKey = (token: string) => Buffer.from(hkdfSync('sha256', Buffer.from(token, 'utf8'), Buffer.alloc(0), 'refresh-token-successor', 32));

/** Encrypts `child` (AES-256-GCM) under a key only the holder of `parent` can derive. */
export function sealChildToken(parent: string, child: string): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', childKey(parent), iv);
  const sealed = Buffer.concat([cipher.update(child, 'utf8'), cipher.final()]);
  return Buffer.concat([iv, sealed, cipher.getAuthTag()]).toString('base64url');
}

/** The token {@link sealChildToken} sealed for `parent`, or undefined when it does not open. */
export function openChildToken(parent: string, sealed: string): string | undefined {
  try {
    const raw = Buffer.from(sealed, 'base64url');
    if (raw.length < 12 + 16 + 1) return undefined;
    const decipher = createDecipheriv('aes-256-gcm', childKey(parent), raw.subarray(0, 12));
    decipher.setAuthTag(raw.subarray(raw.length - 16));
    return Buffer.concat([decipher.update(raw.subarray(12, raw.length - 16)), decipher.final()]).toString('utf8');
  } catch {
    return undefined;
  }
}

/** The lifetime an access token may claim, for {@link checkDecoded}. */
export interface LifetimeBounds {
  /** Seconds from `iat` to `exp` at most: the access token TTL this server issues with. */
  maxLifetime: number;
  /** Seconds of tolerated clock skew, on the lifetime and on an `iat` ahead of `now`. */
  clockSkew: number;
  /** Now, in seconds since the epoch. */
  now: number;
}

/**
 * Checks what jsonwebtoken leaves alone: `exp` and a numeric `iat` present, a lifetime
 * (`exp - iat`) no longer than this server issues and an `iat` not in the future (each within
 * the clock skew), the claims of the right types, and no `crit` header parameter (RFC 7515
 * §4.1.11: a recipient must reject a token naming extensions it does not understand, and this
 * server implements none). Returns the claims or throws.
 */
export function checkDecoded(decoded: jwt.Jwt, bounds: LifetimeBounds): AccessClaims {
  const header = decoded.header as jwt.JwtHeader & { crit?: unknown };
  if (header.crit !== undefined) throw new jwt.JsonWebTokenError('unsupported crit header parameter');
  const p = decoded.payload as Partial<AccessClaims>;
  if (typeof p !== 'object' || p === null) throw new jwt.JsonWebTokenError('payload is not an object');
  if (typeof p.exp !== 'number') throw new jwt.JsonWebTokenError('exp is required');
  // A signed token with a far `exp` (a leaked key's forgery, or one issued under a longer TTL)
  // would otherwise live as long as it says: the lifetime is capped by what this server issues.
  if (typeof p.iat !== 'number' || !Number.isFinite(p.iat)) throw new jwt.JsonWebTokenError('iat is required');
  if (p.exp - p.iat > bounds.maxLifetime + bounds.clockSkew) throw new jwt.JsonWebTokenError('exp is too far from iat');
  // Time cures this one, so it is a NotBeforeError: requireToken does not remember it as refused.
  if (p.iat > bounds.now + bounds.clockSkew) throw new jwt.NotBeforeError('iat is in the future', new Date(p.iat * 1000));
  if (typeof p.sub !== 'string' || typeof p.sid !== 'string' || typeof p.name !== 'string') {
    throw new jwt.JsonWebTokenError('sub, sid and name are required');
  }
  if (p.role !== 'user' && p.role !== 'admin') throw new jwt.JsonWebTokenError('role is invalid');
  return p as AccessClaims;
}

const b64json = (part: string): unknown => JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));

export function createTokens(settings: TokenSettings, clock: Clock): Tokens {
  if (!settings.keyring && settings.secret === undefined) throw new TypeError('createTokens needs a keyring or a secret');
  // Keys are KeyObjects, never strings: jsonwebtoken re-parses a string secret on every call
  // (auth0/node-jsonwebtoken#966), which costs several times the verification itself.
  const keyring = settings.keyring ?? staticHs256Keyring(settings.secret as string);
  const algorithm = keyring.algorithm;
  const keyFor = (header: jwt.JwtHeader): KeyObject => {
    // RFC 8725 §3.10: a key named by the token itself is the attacker's key. Keys come from the keyring only.
    for (const name of KEY_BEARING_HEADERS) {
      if ((header as unknown as Record<string, unknown>)[name] !== undefined) throw new jwt.JsonWebTokenError(`the ${name} header parameter is not accepted`);
    }
    if (typeof header.kid !== 'string') throw new jwt.JsonWebTokenError('kid is required');
    const k = keyring.verifier(header.kid);
    if (!k) throw new UnknownKeyError('unknown kid');
    // RFC 8725 §3.1: the algorithm is the key's, whatever the header says (no HMAC with a public key).
    if (header.alg !== k.alg) throw new jwt.JsonWebTokenError('alg does not match the key');
    return k.key;
  };
  const verifyOptions = () => {
    const options: jwt.VerifyOptions & { complete: true } = {
      // The configured algorithm alone (never EdDSA here: jsonwebtoken 9 cannot verify it, see verifyEdDsa).
      algorithms: [algorithm as jwt.Algorithm],
      issuer: settings.issuer,
      audience: settings.audience,
      clockTolerance: settings.clockSkew,
      complete: true,
    };
    // A getter, read on every verification (jsonwebtoken copies its options), so the injected
    // clock rules. Copying the object with spread or Object.assign would freeze it.
    Object.defineProperty(options, 'clockTimestamp', { enumerable: true, get: () => Math.floor(clock.now() / 1000) });
    return options;
  };

  // Tokens verified before, by their exact text, least recently used out first. Checking a token
  // costs an HMAC and two JSON parses; a client sends the same token with every request until it
  // expires. What verification decides for a given text changes only with time (the key,
  // algorithm, issuer and audience are fixed for the life of this object), so an entry is used
  // only while `exp` is still ahead by the injected clock, and tokens with `nbf` are not kept.
  // Any other text, one byte changed included, is another key: it is verified in full.
  const cacheSize = settings.verifyCacheSize ?? DEFAULT_VERIFY_CACHE_SIZE;
  // Each entry keeps the kid it was verified with: once that key may no longer verify (removed,
  // or past its last token's expiry), the entry is dropped and the token verified afresh.
  const verified = cacheSize > 0 ? new LRUCache<string, { claims: Readonly<AccessClaims>; kid: string }>({ max: cacheSize }) : undefined;

  const acceptVerified = (token: string, decoded: jwt.Jwt): Readonly<AccessClaims> => {
    const bounds = { maxLifetime: settings.accessTokenTtl, clockSkew: settings.clockSkew, now: Math.floor(clock.now() / 1000) };
    const claims = Object.freeze(checkDecoded(decoded, bounds));
    const kid = decoded.header.kid;
    if (verified && typeof kid === 'string' && clock.now() / 1000 < claims.exp && (claims as { nbf?: unknown }).nbf === undefined)
      verified.set(token, { claims, kid });
    return claims;
  };
  const cachedAccess = (token: string): Readonly<AccessClaims> | undefined => {
    const hit = verified?.get(token);
    if (hit === undefined) return undefined;
    // Stricter than verification, which allows the clock skew past exp: once exp passes, the
    // token is verified in full again and refused from the skew on.
    if (clock.now() / 1000 < hit.claims.exp && keyring.verifier(hit.kid) !== undefined) return hit.claims;
    verified?.delete(token);
    return undefined;
  };

  const verifyEdDsa = (token: string): jwt.Jwt => {
    const parts = token.split('.');
    if (parts.length !== 3) throw new jwt.JsonWebTokenError('jwt malformed');
    const [h, p, s] = parts as [string, string, string];
    let header: unknown;
    let payload: unknown;
    try {
      header = b64json(h);
      payload = b64json(p);
    } catch {
      throw new jwt.JsonWebTokenError('invalid token');
    }
    if (typeof header !== 'object' || header === null || typeof payload !== 'object' || payload === null) throw new jwt.JsonWebTokenError('invalid token');
    const key = keyFor(header as jwt.JwtHeader);
    if (!cryptoVerify(null, Buffer.from(`${h}.${p}`, 'ascii'), key, Buffer.from(s, 'base64url'))) throw new jwt.JsonWebTokenError('invalid signature');
    // The registered claims as jsonwebtoken 9 checks them (verify.js), with the same errors.
    const c = payload as jwt.JwtPayload;
    const now = Math.floor(clock.now() / 1000);
    const tolerance = settings.clockSkew;
    if (c.nbf !== undefined) {
      if (typeof c.nbf !== 'number') throw new jwt.JsonWebTokenError('invalid nbf value');
      if (c.nbf > now + tolerance) throw new jwt.NotBeforeError('jwt not active', new Date(c.nbf * 1000));
    }
    if (c.exp !== undefined) {
      if (typeof c.exp !== 'number') throw new jwt.JsonWebTokenError('invalid exp value');
      if (now >= c.exp + tolerance) throw new jwt.TokenExpiredError('jwt expired', new Date(c.exp * 1000));
    }
    const audiences = Array.isArray(c.aud) ? c.aud : [c.aud];
    if (!audiences.includes(settings.audience)) throw new jwt.JsonWebTokenError(`jwt audience invalid. expected: ${settings.audience}`);
    if (c.iss !== settings.issuer) throw new jwt.JsonWebTokenError(`jwt issuer invalid. expected: ${settings.issuer}`);
    return { header: header as jwt.JwtHeader, payload: c, signature: s };
  };

  const sign = (claims: AccessClaims): string => {
    const signer = keyring.signer();
    if (signer.alg !== 'EdDSA') return jwt.sign(claims, signer.key, { algorithm: signer.alg, keyid: signer.kid });
    const input = `${Buffer.from(JSON.stringify({ alg: 'EdDSA', typ: 'JWT', kid: signer.kid })).toString('base64url')}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
    return `${input}.${cryptoSign(null, Buffer.from(input, 'ascii'), signer.key).toString('base64url')}`;
  };

  return {
    keyring,
    keyFor,
    verifyEdDsa,
    signAccess(user, sessionId, notAfter) {
      const iat = Math.floor(clock.now() / 1000);
      const exp = Math.min(iat + settings.accessTokenTtl, Math.floor(notAfter / 1000));
      const claims: AccessClaims = {
        sub: user.id,
        name: user.name,
        role: user.role,
        sid: sessionId,
        iat,
        exp,
        iss: settings.issuer,
        aud: settings.audience,
        jti: randomId(),
      };
      return { token: sign(claims), expiresIn: Math.max(1, exp - iat) };
    },
    verifyOptions,
    acceptVerified,
    cachedAccess,
  };
}
