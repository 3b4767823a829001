import fs from 'node:fs';
import path from 'node:path';
import type { Context, Middleware } from 'koa';
import compose from 'koa-compose';
import mount from 'koa-mount';
import serve from 'koa-static';

export interface StaticMount {
  /** URL prefix, such as `/vendor/bootstrap`; `/` for the pages themselves. */
  prefix: string;
  root: string;
  /** Seconds browsers may cache these files. */
  maxAge?: number;
  /**
   * The only files served from this mount, as paths relative to `root` (`css/bootstrap.min.css`).
   * Anything else under the prefix (a package's package.json, README, sources, `*.map`) is never
   * looked up and gets the 404 problem. Every entry must exist, or building the mount throws.
   * Left out only for the pages' own folder, which holds nothing but what it serves.
   */
  allow?: readonly string[];
  /**
   * Top-level files of the pages' own folder that are not served as pages of their own (the
   * 404 page, which `notFoundPage` sends with its 404 status). Only for the `/` mount.
   */
  hide?: readonly string[];
}

/** Marks, on `ctx.state`, a request the static route took. */
const STATIC_REQUEST = Symbol('static request');

/**
 * Whether the static route took this request (its path belongs to a mount): the request log
 * writes these at debug level, and the metrics count them as `static`.
 */
export function isStaticRequest(ctx: Context): boolean {
  return (ctx.state as Record<symbol, unknown>)[STATIC_REQUEST] === true;
}

export interface StaticFilesOptions {
  /** Headers of everything served (the pages' security headers). */
  headers?: Readonly<Record<string, string>>;
  /**
   * Runs around the static route only (compression). A request whose path belongs to a mount but
   * whose file is missing goes on to the router with `ctx.compress = false`, so the router's
   * answer is never compressed.
   */
  compress?: Middleware;
}

/**
 * Serves the pages and the front-end packages with koa-static, public to everyone. Only GET and
 * HEAD requests whose path belongs to a mount (for a mount with `allow`, is one of its files) are
 * looked up on disk, so API requests such as `GET /user` never pay for a file-system look-up.
 * What it serves gets `opts.headers` (the pages' security headers).
 */
export function staticFiles(mounts: StaticMount[], opts: StaticFilesOptions = {}): Middleware {
  const headers = Object.entries(opts.headers ?? {});
  const around = opts.compress;
  const served: { test: (p: string) => boolean; handle: Middleware }[] = [];
  for (const m of mounts) {
    const middleware = serve(m.root, { extensions: ['html'], maxage: (m.maxAge ?? 0) * 1000, defer: false });
    if (m.prefix === '/') {
      // The pages: '/' and every top-level entry of the folder ('/login' for login.html,
      // '/js/...' for the js folder).
      const hidden = new Set(m.hide ?? []);
      const names = fs.readdirSync(m.root, { withFileTypes: true }).filter((d) => !hidden.has(d.name));
      const exact = new Set(['/', ...names.filter((d) => d.isFile()).flatMap((d) => [`/${d.name}`, `/${d.name.replace(/\.html$/, '')}`])]);
      const dirs = names.filter((d) => d.isDirectory()).map((d) => `/${d.name}/`);
      served.push({ test: (p) => exact.has(p) || dirs.some((d) => p.startsWith(d)), handle: middleware });
    } else {
      const prefix = m.prefix.replace(/\/$/, '');
      const handle = mount(prefix, middleware) as Middleware;
      if (m.allow === undefined) {
        served.push({ test: (p) => p.startsWith(`${prefix}/`), handle });
      } else {
        // Exact, undecoded paths: an encoded or dotted variant of an allowed name is not in the
        // set, so it is refused rather than resolved.
        const allowed = new Set(
          m.allow.map((file) => {
            if (!fs.statSync(path.join(m.root, file)).isFile()) throw new TypeError(`${m.prefix}: ${file} is not a file`);
            return `${prefix}/${file}`;
          }),
        );
        served.push({ test: (p) => allowed.has(p), handle });
      }
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
    const state = ctx.state as Record<symbol, unknown>;
    state[STATIC_REQUEST] = true;
    if (around) chain.unshift(around);
    // Pages and their assets: the headers a page needs (its CSP), over those of an API answer.
    for (const [name, value] of headers) ctx.response.set(name, value);
    return compose(chain)(ctx, () => {
      // No mount had the file: the router answers (its 404), and that answer is not static, so
      // it is neither compressed (koa-compress skips on ctx.compress false) nor counted as static.
      state[STATIC_REQUEST] = false;
      (ctx as { compress?: boolean }).compress = false;
      return next();
    });
  };
}

/** Where an npm package's files are, for mounting. */
export function packageDir(name: string, ...sub: string[]): string {
  return path.join(path.dirname(require.resolve(`${name}/package.json`)), ...sub);
}
