import fs from 'node:fs';
import type { Middleware } from 'koa';

/**
 * Answers a GET or HEAD that nothing else answered with the HTML page in `file` (status 404)
 * when the client prefers HTML to JSON, as a browser navigating does; every other client keeps
 * the 404 problem+json that `problemResponses` makes. Mount it inside `problemResponses`, so a
 * bodiless 404 is seen here first, and before the routes. The page gets `headers` (the pages'
 * CSP: the API's `default-src 'none'` would block its stylesheets).
 */
export function notFoundPage(opts: { file: string; headers?: Readonly<Record<string, string>> }): Middleware {
  // Read once: the page is small and never changes while the process runs.
  const html = fs.readFileSync(opts.file);
  const headers = Object.entries(opts.headers ?? {});
  return async function notFoundPage(ctx, next) {
    await next();
    if (ctx.status !== 404 || ctx.body != null || (ctx.method !== 'GET' && ctx.method !== 'HEAD')) return;
    // The answer depends on Accept: caches must keep the two apart (RFC 9110 §12.5.5).
    ctx.vary('Accept');
    // JSON first: a client that states no preference (no Accept, or */*) gets the problem.
    if (ctx.accepts('application/json', 'application/problem+json', 'text/html') !== 'text/html') return;
    for (const [name, value] of headers) ctx.set(name, value);
    ctx.type = 'text/html; charset=utf-8';
    ctx.body = html;
    // Setting a body makes Koa answer 200; the page is the 404's representation.
    ctx.status = 404;
  };
}
