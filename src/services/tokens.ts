import { createHash, createSecretKey, type KeyObject, randomBytes } from 'node:crypto';
import jwt from 'jsonwebtoken';
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
}

export const ALGORITHM = 'HS256';

export interface Tokens {
  readonly key: KeyObject;
  /** Signs an access token; it never outlives `notAfter` (ms), the end of its session. */
  signAccess(user: { id: string; name: string; role: Role }, sessionId: string, notAfter: number): { token: string; expiresIn: number };
  /**
   * Fresh options for `jsonwebtoken.verify` (and so koa-jwt): algorithm, issuer and audience
   * pinned; add to the object rather than copy it, or its clock stops.
   */
  verifyOptions(): jwt.VerifyOptions & { complete: true };
  /** Verifies and checks an access token completely; throws on any failure. */
  verifyAccess(token: string): AccessClaims;
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

/**
 * Checks what jsonwebtoken leaves alone: `exp` present, the claims of the right types, and no
 * `crit` header parameter (RFC 7515 §4.1.11: a recipient must reject a token naming extensions
 * it does not understand, and this server implements none). Returns the claims or throws.
 */
export function checkDecoded(decoded: jwt.Jwt): AccessClaims {
  const header = decoded.header as jwt.JwtHeader & { crit?: unknown };
  if (header.crit !== undefined) throw new jwt.JsonWebTokenError('unsupported crit header parameter');
  const p = decoded.payload as Partial<AccessClaims>;
  if (typeof p !== 'object' || p === null) throw new jwt.JsonWebTokenError('payload is not an object');
  if (typeof p.exp !== 'number') throw new jwt.JsonWebTokenError('exp is required');
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
  const options = verifyOptions();

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
    verifyAccess(token) {
      return checkDecoded(jwt.verify(token, key, options));
    },
  };
}
