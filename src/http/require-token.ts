import type { Middleware } from 'koa';
import koaJwt from 'koa-jwt';
import type jwt from 'jsonwebtoken';
import type { RevocationList } from '../services/revocations';
import { checkDecoded, type Tokens } from '../services/tokens';

/**
 * koa-jwt, configured so it accepts only what this server issues: HS256 with the server's key,
 * its issuer and audience, an `exp`, no `crit` header, and a session that has not been revoked.
 * The verified claims land in `ctx.state.auth`.
 */
export function requireToken(opts: { tokens: Tokens; revocations: RevocationList }): Middleware {
  const { tokens, revocations } = opts;
  // koa-jwt hands its whole options object to jsonwebtoken.verify, so the pinned verify
  // options and koa-jwt's own live in one object (added to, not copied: see verifyOptions).
  const options = Object.assign(tokens.verifyOptions(), {
    secret: tokens.key,
    key: 'jwt',
    // Runs after the signature and the registered claims check out. A throw here is a 401 too.
    isRevoked: async (ctx: { state: Record<string, unknown> }, decoded: object) => {
      const claims = checkDecoded(decoded as jwt.Jwt);
      if (revocations.has(claims.sid)) return true;
      ctx.state['auth'] = claims;
      return false;
    },
  });
  return koaJwt(options as unknown as koaJwt.Options) as unknown as Middleware;
}
