import { createCipheriv, createDecipheriv, createHash, createSecretKey, hkdfSync, type KeyObject, randomBytes } from 'node:crypto';
import jwt from 'jsonwebtoken';
import { LRUCache } from 'lru-cache';
import type { Clock } from '../clock';
import type { Role } from '../store/store';

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
  secret: string;
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

export const ALGORITHM = 'HS256';

export interface Tokens {
  readonly key: KeyObject;
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

export function createTokens(settings: TokenSettings, clock: Clock): Tokens {
  // A KeyObject, not the string: jsonwebtoken re-parses a string secret on every call
  // (auth0/node-jsonwebtoken#966), which costs several times the verification itself.
  const key = createSecretKey(Buffer.from(settings.secret, 'utf8'));
  const verifyOptions = () => {
    const options: jwt.VerifyOptions & { complete: true } = {
      algorithms: [ALGORITHM],
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
  const verified = cacheSize > 0 ? new LRUCache<string, Readonly<AccessClaims>>({ max: cacheSize }) : undefined;

  const acceptVerified = (token: string, decoded: jwt.Jwt): Readonly<AccessClaims> => {
    const bounds = { maxLifetime: settings.accessTokenTtl, clockSkew: settings.clockSkew, now: Math.floor(clock.now() / 1000) };
    const claims = Object.freeze(checkDecoded(decoded, bounds));
    if (verified && clock.now() / 1000 < claims.exp && (claims as { nbf?: unknown }).nbf === undefined) verified.set(token, claims);
    return claims;
  };
  const cachedAccess = (token: string): Readonly<AccessClaims> | undefined => {
    const hit = verified?.get(token);
    if (hit === undefined) return undefined;
    // Stricter than verification, which allows the clock skew past exp: once exp passes, the
    // token is verified in full again and refused from the skew on.
    if (clock.now() / 1000 < hit.exp) return hit;
    verified?.delete(token);
    return undefined;
  };

  return {
    key,
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
      return { token: jwt.sign(claims, key, { algorithm: ALGORITHM }), expiresIn: Math.max(1, exp - iat) };
    },
    verifyOptions,
    acceptVerified,
    cachedAccess,
  };
}
