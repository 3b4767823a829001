import type { Middleware } from 'koa';
import { AuthError } from '../errors';
import type { RevocationList } from '../services/revocations';
import type { AccessClaims, Tokens } from '../services/tokens';

/** The token of `Bearer <token>` (scheme case-insensitive, one space, as koa-jwt read it), else undefined. */
function bearerToken(header: string): string | undefined {
  const parts = header.trim().split(' ');
  if (parts.length === 2 && /^Bearer$/i.test(parts[0] as string)) return parts[1];
  return undefined;
}

function refused(detail: string, cause?: unknown): AuthError {
  return new AuthError('invalid_token', detail, cause === undefined ? {} : { cause });
}

/**
 * Accepts only what this server issues: an `Authorization: Bearer` token that `tokens.verifyAccess`
 * accepts (HS256 with the server's key, its issuer and audience, an `exp`, no `crit` header), of
 * a session that has not been revoked: revocation is looked up on every request, whether the
 * verification came from the cache or not. The verified claims land in `ctx.state.auth`.
 * Failures are `missing_token` and `invalid_token` errors, which `problemResponses` answers with
 * a 401 and a Bearer challenge.
 *
 * It replaced koa-jwt here (bench/NOTES.md): koa-jwt wraps each verification in several promises
 * and cannot skip verifying a token it verified a moment ago, and its 401 goes through
 * http-errors, which captures a stack trace three times; these errors capture one.
 */
export function requireToken(opts: { tokens: Tokens; revocations: RevocationList }): Middleware {
  const { tokens, revocations } = opts;
  return function requireToken(ctx, next) {
    const header = ctx.get('authorization');
    if (!header) throw new AuthError('missing_token', 'An access token is required (Authorization: Bearer <token>).');
    const token = bearerToken(header);
    if (token === undefined) throw refused('The access token is invalid.');
    let claims: Readonly<AccessClaims>;
    try {
      claims = tokens.verifyAccess(token);
    } catch (error) {
      const expired = error instanceof Error && error.name === 'TokenExpiredError';
      throw refused(expired ? 'The access token has expired.' : 'The access token is invalid.', error);
    }
    if (revocations.has(claims.sid)) throw refused('The access token has been revoked.');
    ctx.state['auth'] = claims;
    // After the checks, outside any try: a failure downstream is not a 401.
    return next();
  };
}
