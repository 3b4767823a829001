import fs from 'node:fs';
import path from 'node:path';
import { PUBLIC_DIR } from '../../src/app';
import { packageDir, staticFiles } from '../../src/http/static-files';
import { expectProblem } from '../support/expect-problem';
import { makeApp } from '../support/make-app';

/** Every local URL a page links to: `href`/`src` attributes, resolved against the page's own URL. */
function linkedUrls(file: string, pageUrl: string): string[] {
  const html = fs.readFileSync(path.join(PUBLIC_DIR, file), 'utf8');
  const urls = [...html.matchAll(/<(?:link|script)\b[^>]*?\s(?:href|src)="([^"]+)"/gi)].map((m) => new URL(m[1] as string, `http://x${pageUrl}`));
  return urls.filter((u) => u.host === 'x').map((u) => u.pathname);
}

/** The local `url(...)` references of a stylesheet, resolved against its URL (query strings dropped). */
function cssUrls(css: string, cssUrl: string): string[] {
  return [...css.matchAll(/url\(\s*["']?([^"')]+)["']?\s*\)/g)]
    .map((m) => m[1] as string)
    .filter((u) => !u.startsWith('data:'))
    .map((u) => new URL(u, `http://x${cssUrl}`).pathname);
}

describe('static files: only what the pages and /docs/ load', () => {
  test('when every file the pages, the docs page and their stylesheets load is fetched, then each is served (the allow-lists cover them)', async () => {
    const t = await makeApp();
    const wanted = new Set<string>();
    for (const [file, url] of [
      ['index.html', '/'],
      ['login.html', '/login'],
      ['signup.html', '/signup'],
      ['admin.html', '/admin'],
      ['404.html', '/a/missing/page'],
      ['docs/index.html', '/docs/'],
    ] as const) {
      for (const u of linkedUrls(file, url)) wanted.add(u);
    }
    for (const u of [...wanted]) {
      if (!u.endsWith('.css')) continue;
      const res = await t.http().get(u);
      expect([u, res.status]).toEqual([u, 200]);
      for (const ref of cssUrls(res.text, u)) wanted.add(ref);
    }
    // The docs page's bundle and the icon font are among them: the lists were read right.
    expect([...wanted]).toEqual(
      expect.arrayContaining([
        '/docs/swagger-ui-bundle.js',
        '/docs/swagger-initializer.js',
        '/vendor/bootstrap-icons/fonts/bootstrap-icons.woff2',
        '/vendor/bootstrap/js/bootstrap.bundle.min.js',
        '/js/admin.js',
      ]),
    );
    for (const u of wanted) {
      const res = await t.http().get(u);
      expect([u, res.status]).toEqual([u, 200]);
    }
    await t.close();
  });

  const swaggerFiles = fs.readdirSync(packageDir('swagger-ui-dist'));
  const docsServed = ['swagger-ui.css', 'index.css', 'swagger-ui-bundle.js', 'favicon-32x32.png', 'favicon-16x16.png', 'index.html', 'swagger-initializer.js'];
  const docsRefused = swaggerFiles.filter((f) => !docsServed.includes(f));

  test('when the rest of swagger-ui-dist is asked for (package.json, README, index.js, source maps, other bundles), then 404 problem+json', async () => {
    expect(docsRefused).toEqual(expect.arrayContaining(['package.json', 'README.md', 'index.js', 'swagger-ui-bundle.js.map', 'swagger-ui.css.map']));
    const t = await makeApp();
    for (const file of docsRefused) {
      for (const method of ['get', 'head'] as const) {
        const res = await t.http()[method](`/docs/${file}`);
        expect([method, file, res.status]).toEqual([method, file, 404]);
        if (method === 'get') expectProblem(res, 404, 'not_found');
      }
    }
    await t.close();
  });

  test.each([
    '/vendor/bootstrap/css/bootstrap.min.css.map',
    '/vendor/bootstrap/css/bootstrap.css.map',
    '/vendor/bootstrap/js/bootstrap.bundle.min.js.map',
    '/vendor/bootstrap/css/bootstrap.css',
    '/vendor/bootstrap-icons/bootstrap-icons.scss',
    '/vendor/bootstrap-icons/bootstrap-icons.json',
    // Encoded or dotted spellings of files that exist are not resolved either.
    '/docs/swagger-ui-bundle.js%2emap',
    '/docs/%70ackage.json',
    '/docs/./package.json',
    '/vendor/bootstrap/css/./bootstrap.min.css.map',
  ])('when %s is asked for, then 404 problem+json', async (url) => {
    const t = await makeApp();
    expectProblem(await t.http().get(url), 404, 'not_found');
    await t.close();
  });

  test('when an allow-list names a file the package does not have, then building the mount throws (a renamed file fails at start-up, not in the browser)', () => {
    expect(() => staticFiles([{ prefix: '/docs', root: packageDir('swagger-ui-dist'), allow: ['swagger-ui-bundle.min.js'] }])).toThrow(
      /swagger-ui-bundle\.min\.js/,
    );
  });
});
