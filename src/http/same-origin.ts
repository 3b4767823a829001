import type { Context } from 'koa';
import { AuthError } from '../errors';

/** Refuses a request a browser sent from another site; see {@link sameOriginGuard}. */
export type SameOriginGuard = (ctx: Context) => void;

/**
 * A check for the operations a browser's cookie can drive (`POST /refresh` with the cookie,
 * `POST /logout`): it throws `cross_site_request` (403) when the browser says the request is
 * cross-site (`Sec-Fetch-Site: cross-site`), or when an `Origin` header is present and is
 * neither this server's own origin (scheme and host as the request arrived, through the app's
 * `proxy` setting) nor one of `allowedOrigins` (CORS_ORIGINS). A request with neither header
 * (curl, another server) passes: no browser sent it, so no cookie rode along uninvited.
 *
 * SameSite=Strict and the JSON preflight already stop the classic forgery; this is the server's
 * own check on top (OWASP CSRF Prevention Cheat Sheet: Fetch Metadata, verifying origin with
 * standard headers), for browsers or proxies where those fall short.
 */
export function sameOriginGuard(opts: { allowedOrigins: readonly string[] }): SameOriginGuard {
  const allowed = new Set(opts.allowedOrigins.map((o) => o.toLowerCase()));
  return function sameOrigin(ctx) {
    if (ctx.get('sec-fetch-site').toLowerCase() === 'cross-site') throw refused();
    const origin = ctx.get('origin');
    if (origin === '') return;
    const o = origin.toLowerCase();
    // Not ctx.origin: in Koa 3 that is the Origin header itself. `Origin: null` (a sandboxed
    // frame, a redirect across sites) matches neither.
    if (o === `${ctx.protocol}://${ctx.host}`.toLowerCase() || allowed.has(o)) return;
    throw refused();
  };
}

function refused(): AuthError {
  return new AuthError('cross_site_request', "This request came from another site; it is accepted only from this server's own pages or a configured origin.");
}
