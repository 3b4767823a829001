import type { Context, Middleware, Next } from 'koa';
import koaJwt from 'koa-jwt';
import { LRUCache } from 'lru-cache';
import type jwt from 'jsonwebtoken';
import { AuthError } from '../errors';
import type { RevocationList } from '../services/revocations';
import { type Tokens, UnknownKeyError } from '../services/tokens';

/** The token of `Bearer <token>` (scheme case-insensitive, one space, as koa-jwt reads it), else undefined. */
function bearerToken(header: string): string | undefined {
  const parts = header.trim().split(' ');
  if (parts.length === 2 && /^Bearer$/i.test(parts[0] as string)) return parts[1];
  return undefined;
}

const REVOKED = 'Token revoked'; // koa-jwt's message when isRevoked answers true

/** Refused token texts remembered (see requireToken); an entry is the text and a short string. */
export const REFUSED_CACHE_SIZE = 1_000;
/** Longer refused texts are not remembered, so the memory stays under a megabyte (this server's tokens are far shorter). */
export const REFUSED_MAX_CHARS = 1_024;

const EXPIRED_DETAIL = 'The access token has expired.';
const REVOKED_DETAIL = 'The access token has been revoked.';
const INVALID_DETAIL = 'The access token is invalid.';

function refusalDetail(cause?: unknown): string {
  const e = cause as { name?: unknown; message?: unknown } | undefined;
  if (e?.name === 'TokenExpiredError') return EXPIRED_DETAIL;
  if (e?.message === REVOKED) return REVOKED_DETAIL;
  return INVALID_DETAIL;
}

function refused(cause?: unknown): AuthError {
  return new AuthError('invalid_token', refusalDetail(cause), cause === undefined ? {} : { cause });
}

/**
 * The guard of every operation that is not `security: []`: koa-jwt, configured so it accepts
 * only what this server issues (the configured algorithm, with the key its `kid` names in the
 * keyring and that key's own algorithm, its issuer and audience, an `exp`,
 * no `crit` header, the claims of the right types) of a session that has not been revoked
 * (koa-jwt's `isRevoked`). The verified claims land in `ctx.state.auth`. Failures are
 * `missing_token` and `invalid_token` errors, which `problemResponses` answers with a 401 and a
 * Bearer challenge.
 *
 * A client sends the same token with every request until it expires, so koa-jwt's verdicts are
 * remembered by the exact token text until its `exp` (`tokens.cachedAccess`); a remembered token
 * skips koa-jwt but not the revocation check, which runs on every request (bench/NOTES.md).
 * koa-jwt runs with `passthrough` so that its failures come back here as `jwtOriginalError` and
 * are thrown as our errors, with one stack trace instead of http-errors' three.
 *
 * Refusals are remembered too, by exact text, for the same reason: a client holding an expired
 * or broken token sends it again and again. Only a refusal that time cannot undo is kept: a bad
 * signature, format, algorithm, issuer, audience or claim, `crit`, and revocation stay refused;
 * a token refused as expired or not yet valid (`nbf`) is verified afresh each time, as the clock
 * decides those. Remembering a refusal can only refuse, never accept.
 */
export function requireToken(opts: { tokens: Tokens; revocations: RevocationList }): Middleware {
  const { tokens, revocations } = opts;
  // koa-jwt hands its whole options object to jsonwebtoken.verify, so the pinned verify options
  // and koa-jwt's own live in one object (added to, not copied: see verifyOptions).
  const isRevoked = async (ctx: Context, decoded: object, token: string) => {
    const claims = tokens.acceptVerified(token, decoded as jwt.Jwt);
    if (revocations.has(claims.sid)) return true;
    ctx.state['auth'] = claims;
    return false;
  };
  const options = Object.assign(tokens.verifyOptions(), {
    // The key by the token's kid, from the in-memory keyring (no store access); koa-jwt calls
    // this with the decoded header. A header without a known kid, with another alg than its
    // key's, or naming a key of its own (jku, jwk, x5u, x5c) is refused here.
    secret: async (header: jwt.JwtHeader) => tokens.keyFor(header),
    // koa-jwt's complete result ({ header, payload, signature }); the claims go to `auth`.
    key: 'jwt',
    passthrough: true,
    // Runs only after jsonwebtoken accepted the signature and the registered claims. A throw here
    // refuses the token as well.
    isRevoked,
  });
  // jsonwebtoken 9 (under koa-jwt) knows no EdDSA: for it the same steps, with the signature and
  // the registered claims checked by tokens.verifyEdDsa, and failures handed on the same way.
  const guard: Middleware =
    tokens.keyring.algorithm === 'EdDSA'
      ? async (ctx, next) => {
          try {
            const token = bearerToken(ctx.get('authorization')) as string;
            if (await isRevoked(ctx, tokens.verifyEdDsa(token), token)) throw new Error(REVOKED);
          } catch (error) {
            ctx.state['jwtOriginalError'] = error;
          }
          // eslint-disable-next-line @typescript-eslint/no-unsafe-return -- @types/koa types a middleware's result as any: this is the next one's promise
          return next();
        }
      : koaJwt(options as unknown as koaJwt.Options);
  // Refused texts and their detail, least recently used out first.
  const refusedTexts = new LRUCache<string, string>({ max: REFUSED_CACHE_SIZE });
  // A key change can turn a refusal into an acceptance (a kid learned late): start afresh.
  tokens.keyring.onChange(() => refusedTexts.clear());
  const remember = (token: string, failure: unknown) => {
    const name = (failure as { name?: unknown }).name;
    if (name === 'TokenExpiredError' || name === 'NotBeforeError' || token.length > REFUSED_MAX_CHARS) return;
    // An unknown kid may be a key another instance has just made: verified afresh next time.
    if (failure instanceof UnknownKeyError) return;
    refusedTexts.set(token, refusalDetail(failure));
  };

  return function requireToken(ctx: Context, next: Next) {
    const header = ctx.get('authorization');
    if (!header) throw new AuthError('missing_token', 'An access token is required (Authorization: Bearer <token>).');
    const token = bearerToken(header);
    if (token === undefined) throw refused();
    const cached = tokens.cachedAccess(token);
    if (cached !== undefined) {
      if (revocations.has(cached.sid)) throw new AuthError('invalid_token', REVOKED_DETAIL);
      ctx.state['auth'] = cached;
      return next();
    }
    const refusedBefore = refusedTexts.get(token);
    if (refusedBefore !== undefined) throw new AuthError('invalid_token', refusedBefore);
    // eslint-disable-next-line @typescript-eslint/no-unsafe-return -- @types/koa types a middleware's result as any: this is the next one's promise
    return guard(ctx, () => {
      // Fails closed: on with the request only when isRevoked accepted this very token.
      const failure: unknown = ctx.state['jwtOriginalError'];
      if (failure !== undefined) {
        remember(token, failure);
        throw refused(failure);
      }
      if (ctx.state['auth'] === undefined) throw refused();
      return next();
    });
  };
}
