import fs from 'node:fs';
import path from 'node:path';
import { NOT_FOUND_PAGE, PUBLIC_DIR } from '../../src/app';
import { expectProblem } from '../support/expect-problem';
import { makeApp, type TestApp } from '../support/make-app';

/** What Chromium sends when it navigates to a page. */
const BROWSER_ACCEPT =
  'text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7';

let t: TestApp;
beforeAll(async () => {
  t = await makeApp();
});
afterAll(async () => {
  await t.close();
});

const csp = (res: { headers: Record<string, string | undefined> }) => res.headers['content-security-policy'] ?? '';
const vary = (res: { headers: Record<string, string | undefined> }) => (res.headers['vary'] ?? '').split(/\s*,\s*/).map((v) => v.toLowerCase());

describe('a path that is not there', () => {
  test.each([
    ['a browser navigating', BROWSER_ACCEPT],
    ['a client that lists HTML before JSON at the same weight', 'text/html, application/json'],
    ['a client that asks for HTML only', 'text/html'],
  ])("when %s asks for it, then 404 with the HTML page, the pages' CSP and Vary: Accept", async (_who, accept) => {
    for (const url of ['/nope', '/a/deeper/path', '/js/missing.js', '/vendor/bootstrap/package.json']) {
      const res = await t.http().get(url).set('Accept', accept);
      expect([url, res.status, res.headers['content-type']]).toEqual([url, 404, 'text/html; charset=utf-8']);
      expect(res.text).toBe(fs.readFileSync(path.join(PUBLIC_DIR, NOT_FOUND_PAGE), 'utf8'));
      expect(res.text).toContain('<h1 class="h4 mb-3"><i class="bi bi-signpost-split me-2" aria-hidden="true"></i>Page not found</h1>');
      // The page loads its stylesheets and theme script: the API's default-src 'none' would block them.
      expect(csp(res)).toMatch(/(^|;)\s*script-src 'self'/);
      expect(csp(res)).toMatch(/(^|;)\s*style-src 'self'/);
      expect(vary(res)).toContain('accept');
    }
  });

  test.each([
    ['no Accept', undefined],
    ['Accept: */* (curl)', '*/*'],
    ['Accept: application/json', 'application/json'],
    ["the pages' fetch Accept", 'application/json, application/problem+json'],
    ['HTML at a lower weight than JSON', 'text/html;q=0.5, application/json'],
    ['JSON before HTML at the same weight', 'application/json, text/html'],
  ])('when a client sends %s, then 404 not_found problem+json, with Vary: Accept', async (_who, accept) => {
    const req = t.http().get('/nope');
    const res = await (accept === undefined ? req : req.set('Accept', accept));
    expectProblem(res, 404, 'not_found');
    expect(csp(res)).toBe("default-src 'none';frame-ancestors 'none'");
    expect(vary(res)).toContain('accept');
  });

  test('when a browser sends HEAD, then 404 text/html with no body', async () => {
    const res = await t.http().head('/nope').set('Accept', BROWSER_ACCEPT);
    expect(res.status).toBe(404);
    expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(res.text ?? '').toBe('');
  });

  test('when a browser POSTs to it, then the problem: only GET and HEAD get the page', async () => {
    const res = await t.http().post('/nope').set('Accept', BROWSER_ACCEPT).send({});
    expectProblem(res, 404, 'not_found');
  });

  test.each(['/404', '/404.html'])('when %s is asked for, then 404 as well: the page is never served as a page of its own with 200', async (url) => {
    const res = await t.http().get(url).set('Accept', BROWSER_ACCEPT);
    expect(res.status).toBe(404);
    expectProblem(await t.http().get(url), 404, 'not_found');
  });

  test('when a browser asks for a path that exists with another method, then 405 problem, not the page', async () => {
    const res = await t.http().get('/logout').set('Accept', BROWSER_ACCEPT);
    expectProblem(res, 405, 'method_not_allowed');
  });

  test('when an operation answers 404 itself (an unknown session), then its problem, whatever the Accept', async () => {
    const user = await t.makeUser();
    const { access } = await t.login(user.name, user.password);
    const res = await t.http().delete('/sessions/AAAAAAAAAAAAAAAAAAAAAA').set('Authorization', `Bearer ${access}`).set('Accept', BROWSER_ACCEPT);
    expectProblem(res, 404, 'session_not_found');
  });

  test('when the pages are asked for, then they still answer 200 (the page hook only sees what nothing else answered)', async () => {
    for (const url of ['/', '/login', '/signup', '/js/theme.js']) {
      const res = await t.http().get(url).set('Accept', BROWSER_ACCEPT);
      expect([url, res.status]).toEqual([url, 200]);
    }
  });
});
