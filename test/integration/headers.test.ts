import type { Response } from 'supertest';
import { helmetHeaders } from '../../src/http/security-headers';
import { expectContract } from '../support/contract-check';
import { makeApp } from '../support/make-app';

/** `default-src 'self'; script-src 'self'` as a map of directive to its sources. */
function parseCsp(header: string | undefined): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const part of String(header ?? '').split(';')) {
    const [name, ...sources] = part.trim().split(/\s+/);
    if (name) out.set(name.toLowerCase(), sources);
  }
  return out;
}

const PRIVATE_REFERRER_POLICIES = ['no-referrer', 'same-origin', 'strict-origin', 'strict-origin-when-cross-origin'];

/** The headers every response carries, page or API, success or problem. */
function expectBaseHeaders(res: Response): void {
  expect(res.headers['x-content-type-options']).toBe('nosniff');
  expect(PRIVATE_REFERRER_POLICIES).toContain(res.headers['referrer-policy']);
  expect(res.headers['x-powered-by']).toBeUndefined();
  expect(res.headers['x-frame-options']).toBe('DENY');
  expect(res.headers['access-control-allow-origin']).toBeUndefined();
}

describe('security headers', () => {
  test.each(['/', '/login', '/signup'])('when the page %s is fetched, then its CSP allows only its own scripts and no framing', async (page) => {
    const t = await makeApp();
    const res = await t.http().get(page);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/html/);
    expectBaseHeaders(res);
    const csp = parseCsp(res.headers['content-security-policy']);
    const scriptSrc = csp.get('script-src');
    expect(scriptSrc).toContain("'self'");
    expect(scriptSrc).not.toContain("'unsafe-inline'");
    expect(scriptSrc).not.toContain("'unsafe-eval'");
    expect(scriptSrc).not.toContain('*');
    expect(csp.get('frame-ancestors')).toEqual(["'none'"]);
    expect(csp.get('object-src')).toEqual(["'none'"]);
    // The page itself must keep to that CSP: every script from a file, no handler attributes.
    const html = res.text;
    const scripts = html.match(/<script\b[^>]*>/gi) ?? [];
    expect(scripts.length).toBeGreaterThan(0);
    for (const tag of scripts) expect(tag).toMatch(/\ssrc="\/[^"]+"/);
    expect(html).not.toMatch(/<script\b[^>]*>[^<\s]/i);
    expect(html).not.toMatch(/\son[a-z]+\s*=/i);
    expect(html).not.toMatch(/javascript:/i);
    await t.close();
  });

  test('when API answers and problems are sent, then they carry nosniff and a Referrer-Policy and no X-Powered-By', async () => {
    const t = await makeApp();
    const answers = [
      await t.http().get('/healthz'),
      await t.http().get('/user'),
      await t.http().get('/nope'),
      await t.http().post('/login').set('Content-Type', 'application/json').send('{'),
    ];
    expect(answers.map((r) => r.status)).toEqual([200, 401, 404, 400]);
    for (const res of answers) expectBaseHeaders(res);
    await t.close();
  });

  test.each(['/', '/login', '/js/api.js', '/vendor/bootstrap/css/bootstrap.min.css', '/docs/'])(
    "when the page or asset %s is fetched, then it carries the rest of helmet's headers and no HSTS (TLS is the proxy's)",
    async (url) => {
      const t = await makeApp();
      const res = await t.http().get(url);
      expect(res.status).toBe(200);
      expect(res.headers).toMatchObject({
        'cross-origin-opener-policy': 'same-origin',
        'cross-origin-resource-policy': 'same-origin',
        'origin-agent-cluster': '?1',
        'x-dns-prefetch-control': 'off',
        'x-download-options': 'noopen',
        'x-permitted-cross-domain-policies': 'none',
        'x-xss-protection': '0',
      });
      expect(res.headers['strict-transport-security']).toBeUndefined();
      expect(parseCsp(res.headers['content-security-policy']).get('default-src')).toEqual(["'self'"]);
      await t.close();
    },
  );

  test('when the API answers (success, problem, unknown path), then it carries the headers OWASP names for API responses and none of the page-only ones', async () => {
    const t = await makeApp();
    const u = await t.makeUser();
    const token = (await t.login(u.name, u.password)).access;
    const answers = [
      await t.http().get('/user').set('Authorization', `Bearer ${token}`),
      await t.http().get('/user'),
      await t.http().get('/healthz'),
      await t.http().get('/no/such/path'),
    ];
    expect(answers.map((r) => r.status)).toEqual([200, 401, 200, 404]);
    for (const res of answers) {
      expectBaseHeaders(res);
      const csp = parseCsp(res.headers['content-security-policy']);
      expect([...csp.entries()]).toEqual([
        ['default-src', ["'none'"]],
        ['frame-ancestors', ["'none'"]],
      ]);
      expect(res.headers['cross-origin-resource-policy']).toBe('same-origin');
      for (const pageOnly of [
        'cross-origin-opener-policy',
        'origin-agent-cluster',
        'x-dns-prefetch-control',
        'x-download-options',
        'x-permitted-cross-domain-policies',
        'x-xss-protection',
        'strict-transport-security',
      ]) {
        expect([pageOnly, res.headers[pageOnly]]).toEqual([pageOnly, undefined]);
      }
    }
    await t.close();
  });

  test('when a CSP directive would depend on the request (a function), then the headers are not fixed at start-up: it refuses', () => {
    expect(() => helmetHeaders({ contentSecurityPolicy: { directives: { scriptSrc: ["'self'", () => "'nonce-x'"] } } })).toThrow(/depends on the request/);
    expect(helmetHeaders({ contentSecurityPolicy: { directives: { scriptSrc: ["'self'"] } } })['Content-Security-Policy']).toMatch(/script-src 'self'/);
  });

  test('when tokens are issued or the caller is described, then the answer says Cache-Control: no-store', async () => {
    const t = await makeApp();
    const u = await t.makeUser({ name: 'ivan' });
    const login = await t.http().post('/login').send({ name: 'ivan', password: u.password });
    expectContract(login, 'POST', '/login');
    expect(login.status).toBe(200);
    const refresh = await t.http().post('/refresh').send({ refresh_token: login.body.refresh_token });
    expectContract(refresh, 'POST', '/refresh');
    expect(refresh.status).toBe(200);
    const me = await t.http().get('/user').set('Authorization', `Bearer ${refresh.body.access_token}`);
    expectContract(me, 'GET', '/user');
    expect(me.status).toBe(200);
    for (const res of [login, refresh, me]) {
      expect(res.headers['cache-control']).toBe('no-store');
      expectBaseHeaders(res);
    }
    await t.close();
  });
});

describe('CORS', () => {
  const preflight = (t: Awaited<ReturnType<typeof makeApp>>, origin: string) =>
    t.http().options('/login').set('Origin', origin).set('Access-Control-Request-Method', 'POST').set('Access-Control-Request-Headers', 'content-type');

  test('when CORS_ORIGINS is unset, then no origin is allowed, for a preflight or a request', async () => {
    const t = await makeApp();
    const pre = await preflight(t, 'https://app.example');
    expect(pre.headers['access-control-allow-origin']).toBeUndefined();
    expect(pre.headers['access-control-allow-methods']).toBeUndefined();
    const res = await t.http().get('/info').set('Origin', 'https://app.example');
    expect(res.status).toBe(200);
    expect(res.headers['access-control-allow-origin']).toBeUndefined();
    await t.close();
  });

  test('when CORS_ORIGINS names an origin, then its preflight is allowed and another origin gets nothing', async () => {
    const t = await makeApp({ CORS_ORIGINS: 'https://app.example' });
    const pre = await preflight(t, 'https://app.example');
    expect(pre.status).toBe(204);
    expect(pre.headers['access-control-allow-origin']).toBe('https://app.example');
    expect(String(pre.headers['access-control-allow-methods']).split(',')).toContain('POST');
    expect(String(pre.headers['access-control-allow-headers']).toLowerCase().split(',')).toEqual(expect.arrayContaining(['authorization', 'content-type']));
    expect(String(pre.headers['vary'])).toMatch(/\bOrigin\b/);

    const res = await t.http().post('/login').set('Origin', 'https://app.example').send({ name: 'nobody', password: 'whatever' });
    expectContract(res, 'POST', '/login');
    expect(res.status).toBe(401);
    expect(res.headers['access-control-allow-origin']).toBe('https://app.example');
    // A cross-origin script may read these, or it could not tell a 429 from a 401.
    expect(String(res.headers['access-control-expose-headers']).split(',')).toEqual(
      expect.arrayContaining(['X-Request-Id', 'WWW-Authenticate', 'Retry-After']),
    );

    for (const origin of ['https://evil.example', 'https://app.example.evil.example', 'http://app.example', 'null']) {
      const other = await preflight(t, origin);
      expect([origin, other.headers['access-control-allow-origin']]).toEqual([origin, undefined]);
      const simple = await t.http().get('/info').set('Origin', origin);
      expect([origin, simple.headers['access-control-allow-origin']]).toEqual([origin, undefined]);
    }
    await t.close();
  });
});
