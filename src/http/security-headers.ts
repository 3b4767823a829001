import type { IncomingMessage, ServerResponse } from 'node:http';
import helmet, { type HelmetOptions } from 'helmet';
import type { Middleware } from 'koa';

/**
 * The headers helmet sets for `options`, worked out once. Helmet is an Express middleware; run
 * per request (koa-helmet) it rebuilds the same headers through a promise and a dozen calls each
 * time (bench/NOTES.md). With no function among the CSP directives the headers do not depend on
 * the request, so they are captured here from one run and refused otherwise.
 */
export function helmetHeaders(options: HelmetOptions): Readonly<Record<string, string>> {
  const csp = options.contentSecurityPolicy;
  const directives = typeof csp === 'object' ? Object.values(csp.directives ?? {}) : [];
  if (directives.flat().some((value) => typeof value === 'function')) {
    throw new TypeError('a CSP directive is a function: its header depends on the request and cannot be set once');
  }
  const headers: Record<string, string> = {};
  const res = {
    setHeader(name: string, value: string | number | readonly string[]) {
      headers[name] = String(value);
    },
    removeHeader(name: string) {
      delete headers[name];
    },
  };
  let outcome: unknown = 'pending';
  helmet(options)({} as IncomingMessage, res as unknown as ServerResponse, (err?: unknown) => {
    outcome = err;
  });
  if (outcome === 'pending') throw new TypeError('helmet did not finish at once: its headers depend on the request');
  if (outcome !== undefined) throw outcome;
  return Object.freeze(headers);
}

/** Sets headers worked out once (see {@link helmetHeaders}) on every answer. */
export function securityHeaders(fixed: Readonly<Record<string, string>>): Middleware {
  const headers = Object.entries(fixed);
  return function securityHeaders(ctx, next) {
    for (const [name, value] of headers) ctx.response.set(name, value);
    return next();
  };
}
