import fs from 'node:fs';
import path from 'node:path';
import type { Middleware } from 'koa';
import compose from 'koa-compose';
import mount from 'koa-mount';
import serve from 'koa-static';

export interface StaticMount {
  /** URL prefix, such as `/vendor/bootstrap`; `/` for the pages themselves. */
  prefix: string;
  root: string;
  /** Seconds browsers may cache these files. */
  maxAge?: number;
}

/**
 * Serves the pages and the front-end packages with koa-static, public to everyone. Only GET and
 * HEAD requests whose path belongs to a mount are looked up on disk, so API requests such as
 * `GET /user` never pay for a file-system look-up. What it serves gets `opts.headers` (the
 * pages' security headers).
 */
export function staticFiles(mounts: StaticMount[], opts: { headers?: Readonly<Record<string, string>> } = {}): Middleware {
  const headers = Object.entries(opts.headers ?? {});
  const served: { test: (p: string) => boolean; handle: Middleware }[] = [];
  for (const m of mounts) {
    const middleware = serve(m.root, { extensions: ['html'], maxage: (m.maxAge ?? 0) * 1000, defer: false });
    if (m.prefix === '/') {
      // The pages: '/' and every top-level entry of the folder ('/login' for login.html,
      // '/js/...' for the js folder).
      const names = fs.readdirSync(m.root, { withFileTypes: true });
      const exact = new Set(['/', ...names.filter((d) => d.isFile()).flatMap((d) => [`/${d.name}`, `/${d.name.replace(/\.html$/, '')}`])]);
      const dirs = names.filter((d) => d.isDirectory()).map((d) => `/${d.name}/`);
      served.push({ test: (p) => exact.has(p) || dirs.some((d) => p.startsWith(d)), handle: middleware });
    } else {
      const prefix = m.prefix.replace(/\/$/, '');
      served.push({ test: (p) => p.startsWith(`${prefix}/`), handle: mount(prefix, middleware) as Middleware });
    }
  }
  return function staticRoute(ctx, next) {
    if (ctx.method !== 'GET' && ctx.method !== 'HEAD') return next();
    // A loop, not filter/map: this runs for every GET, API requests included, and for them
    // finds nothing.
    const p = ctx.path;
    let chain: Middleware[] | undefined;
    for (const s of served) if (s.test(p)) (chain ??= []).push(s.handle);
    if (chain === undefined) return next();
    // Pages and their assets: the headers a page needs (its CSP), over those of an API answer.
    for (const [name, value] of headers) ctx.response.set(name, value);
    return compose(chain)(ctx, next);
  };
}

/** Where an npm package's files are, for mounting. */
export function packageDir(name: string, ...sub: string[]): string {
  return path.join(path.dirname(require.resolve(`${name}/package.json`)), ...sub);
}
