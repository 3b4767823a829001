import type { Response } from 'supertest';
import { expectContract } from '../support/contract-check';
import { makeApp, type TestApp } from '../support/make-app';

const HOST = 'auth.example:3000';
const OWN = `http://${HOST}`;

/** Request headers a browser would add, by case. */
type Headers = Record<string, string>;

async function refreshByCookie(t: TestApp, cookie: string, headers: Headers): Promise<Response> {
  const req = t.http().post('/refresh').set('Host', HOST).set('Cookie', cookie);
  for (const [name, value] of Object.entries(headers)) req.set(name, value);
  return expectContract(await req.send({}), 'POST', '/refresh');
}

async function logout(t: TestApp, access: string, headers: Headers): Promise<Response> {
  const req = t.http().post('/logout').set('Host', HOST).set('Authorization', `Bearer ${access}`);
  for (const [name, value] of Object.entries(headers)) req.set(name, value);
  return expectContract(await req, 'POST', '/logout');
}

function expectCrossSite(res: Response): void {
  expect([res.status, res.body.code]).toEqual([403, 'cross_site_request']);
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
  // The refused request does not clear the browser's cookie either.
  expect(res.headers['set-cookie']).toBeUndefined();
}

const crossSite: [string, Headers][] = [
  ['Sec-Fetch-Site: cross-site, no Origin', { 'Sec-Fetch-Site': 'cross-site' }],
  ['Sec-Fetch-Site: cross-site with this Origin', { 'Sec-Fetch-Site': 'cross-site', Origin: OWN }],
  ['an Origin of another site', { Origin: 'https://evil.example' }],
  ['an Origin of this host on another port', { Origin: 'http://auth.example:4000' }],
  ['an Origin of this host over the other scheme', { Origin: `https://${HOST}` }],
  ['Origin: null (a sandboxed frame)', { Origin: 'null' }],
  ["a configured origin's look-alike", { Origin: 'https://app.example.evil.example' }],
];

const sameSite: [string, Headers][] = [
  ['neither Origin nor Sec-Fetch-Site (curl, a server)', {}],
  ["this server's own Origin", { Origin: OWN }],
  ["this server's own Origin, in another case", { Origin: OWN.toUpperCase() }],
  ['Sec-Fetch-Site: same-origin and its Origin', { 'Sec-Fetch-Site': 'same-origin', Origin: OWN }],
  ['a CORS_ORIGINS origin', { Origin: 'https://app.example' }],
];

describe('POST /refresh with the cookie: cross-site requests', () => {
  test.each(crossSite)("when it comes with %s, then 403 cross_site_request and the cookie's token is not spent", async (_name, headers) => {
    const t = await makeApp({ CORS_ORIGINS: 'https://app.example' });
    const u = await t.makeUser({ name: 'ada' });
    const { cookie } = await t.login('ada', u.password);
    expectCrossSite(await refreshByCookie(t, cookie, headers));
    expect((await refreshByCookie(t, cookie, { Origin: OWN })).status).toBe(200);
    await t.close();
  });

  test.each(sameSite)('when it comes with %s, then 200', async (_name, headers) => {
    const t = await makeApp({ CORS_ORIGINS: 'https://app.example' });
    const u = await t.makeUser({ name: 'bea' });
    const { cookie } = await t.login('bea', u.password);
    expect((await refreshByCookie(t, cookie, headers)).status).toBe(200);
    await t.close();
  });

  test('when the refresh token comes in the body, then Origin does not matter: the sender holds the token itself', async () => {
    const t = await makeApp();
    const u = await t.makeUser({ name: 'cy' });
    const { refresh } = await t.login('cy', u.password);
    const res = await t.http().post('/refresh').set('Origin', 'https://elsewhere.example').set('Sec-Fetch-Site', 'cross-site').send({ refresh_token: refresh });
    expect(expectContract(res, 'POST', '/refresh').status).toBe(200);
    await t.close();
  });

  test('when the app trusts its proxy, then its own origin is the one the proxy forwards (X-Forwarded-Proto, X-Forwarded-Host); without TRUST_PROXY that origin is foreign', async () => {
    const forwarded = { 'X-Forwarded-Proto': 'https', 'X-Forwarded-Host': 'login.example', Origin: 'https://login.example' };
    const trusting = await makeApp({ TRUST_PROXY: 'true', COOKIE_SECURE: 'false' });
    const u1 = await trusting.makeUser({ name: 'dee' });
    expect((await refreshByCookie(trusting, (await trusting.login('dee', u1.password)).cookie, forwarded)).status).toBe(200);
    await trusting.close();

    const direct = await makeApp();
    const u2 = await direct.makeUser({ name: 'eve' });
    expectCrossSite(await refreshByCookie(direct, (await direct.login('eve', u2.password)).cookie, forwarded));
    await direct.close();
  });
});

describe('POST /logout: cross-site requests', () => {
  test.each(crossSite)('when it comes with %s, then 403 cross_site_request and the session goes on', async (_name, headers) => {
    const t = await makeApp({ CORS_ORIGINS: 'https://app.example' });
    const u = await t.makeUser({ name: 'fay' });
    const { access } = await t.login('fay', u.password);
    expectCrossSite(await logout(t, access, headers));
    expect((await t.http().get('/user').set('Authorization', `Bearer ${access}`)).status).toBe(200);
    await t.close();
  });

  test.each(sameSite)('when it comes with %s, then 204', async (_name, headers) => {
    const t = await makeApp({ CORS_ORIGINS: 'https://app.example' });
    const u = await t.makeUser({ name: 'gus' });
    const { access } = await t.login('gus', u.password);
    expect((await logout(t, access, headers)).status).toBe(204);
    await t.close();
  });
});

describe('POST /login: cross-site requests (login CSRF)', () => {
  async function login(t: TestApp, name: string, password: string, headers: Headers): Promise<Response> {
    const req = t.http().post('/login').set('Host', HOST);
    for (const [h, value] of Object.entries(headers)) req.set(h, value);
    return expectContract(await req.send({ name, password }), 'POST', '/login');
  }

  test.each(crossSite)('when it comes with %s, then 403 cross_site_request, no password is checked and no cookie is set', async (_name, headers) => {
    const t = await makeApp({ CORS_ORIGINS: 'https://app.example' });
    const u = await t.makeUser({ name: 'hank' });
    expectCrossSite(await login(t, 'hank', u.password, headers));
    await t.close();
  });

  test.each(sameSite)('when it comes with %s, then 200', async (_name, headers) => {
    const t = await makeApp({ CORS_ORIGINS: 'https://app.example' });
    const u = await t.makeUser({ name: 'ivy' });
    expect((await login(t, 'ivy', u.password, headers)).status).toBe(200);
    await t.close();
  });
});
