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
  // eslint-disable-next-line @typescript-eslint/only-throw-error -- helmet's own error (bad options), passed on as it came
  if (outcome !== undefined) throw outcome;
  return Object.freeze(headers);
}

/** Sets headers worked out once (see {@link helmetHeaders}) on every answer. */
export function securityHeaders(fixed: Readonly<Record<string, string>>): Middleware {
  const names = Object.keys(fixed);
  const values = names.map((name) => fixed[name] as string);
  return function securityHeaders(ctx, next) {
    // Straight to Node's setHeader (which still validates each): the values are the fixed
    // strings helmet gave at start-up, so Koa's per-call type checks and delegation add nothing
    // (bench/NOTES.md). Nothing upstream has answered yet, but a sent head is left alone, as
    // ctx.set would.
    const res = ctx.res;
    if (!res.headersSent) for (let i = 0; i < names.length; i += 1) res.setHeader(names[i] as string, values[i] as string);
    return next();
  };
}
