import jwt from 'jsonwebtoken';
import { createApp } from '../../src/app';
import { loadConfig } from '../../src/config';
import { createLogger } from '../../src/http/request-log';
import { createPasswords, type Passwords } from '../../src/services/passwords';
import { openStore } from '../../src/store/open-store';
import request from 'supertest';
import { expectContract } from '../support/contract-check';
import { makeApp, TEST_SECRET, testPasswords } from '../support/make-app';

describe('POST /login', () => {
  test('when the name and password are right, then it answers a Bearer token pair that is not cached', async () => {
    const t = await makeApp();
    const u = await t.makeUser({ name: 'alice' });
    const res = await t.http().post('/login').send({ name: 'alice', password: u.password });
    expectContract(res, 'POST', '/login');
    expect(res.status).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.body.token_type).toBe('Bearer');
    expect(res.body.expires_in).toBe(t.config.accessTokenTtl);
    const signer = t.app.services.keyring.signer();
    const claims = jwt.verify(res.body.access_token, signer.key, { algorithms: ['HS256'] }) as jwt.JwtPayload;
    expect(jwt.decode(res.body.access_token, { complete: true })?.header).toEqual({ alg: 'HS256', typ: 'JWT', kid: signer.kid });
    expect(claims).toMatchObject({ sub: u.id, name: 'alice', role: 'user', iss: t.config.jwtIssuer, aud: t.config.jwtAudience });
    await t.close();
  });

  test('when the name is unknown or the password wrong, then both get the same 401 problem with a Bearer challenge', async () => {
    const t = await makeApp();
    const u = await t.makeUser({ name: 'bob' });
    const unknown = await t.http().post('/login').send({ name: 'nobody', password: u.password });
    const wrong = await t
      .http()
      .post('/login')
      .send({ name: 'bob', password: `${u.password}x` });
    for (const res of [unknown, wrong]) {
      expectContract(res, 'POST', '/login');
      expect(res.status).toBe(401);
      expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(res.headers['www-authenticate']).toBe('Bearer realm="api"');
    }
    expect(unknown.body).toEqual(wrong.body);
    expect(unknown.body.code).toBe('invalid_credentials');
    await t.close();
  });

  test('when the name is unknown, then a dummy hash is verified so the answer costs the same', async () => {
    const real = await testPasswords();
    const calls: string[] = [];
    const passwords: Passwords = {
      ...real,
      verify: (h, p) => (calls.push('verify'), real.verify(h, p)),
      verifyDummy: (p) => (calls.push('dummy'), real.verifyDummy(p)),
    };
    const config = loadConfig({ NODE_ENV: 'test', JWT_SECRET: TEST_SECRET });
    const store = await openStore('sqlite::memory:');
    const app = createApp({ config, store, passwords, logger: createLogger('silent') });
    await app.services.auth.addUser('carol', 'carol-password', 'user');
    await request(app.callback()).post('/login').send({ name: 'nobody', password: 'whatever-pass' }).expect(401);
    await request(app.callback()).post('/login').send({ name: 'carol', password: 'wrong-password' }).expect(401);
    expect(calls).toEqual(['dummy', 'verify']);
    await store.close();
  });

  test('when the name differs only in case or Unicode form, then it is the same account', async () => {
    const t = await makeApp();
    const u = await t.makeUser({ name: 'Alice' });
    for (const name of ['alice', 'ALICE', 'Ａｌｉｃｅ']) {
      const res = await t.http().post('/login').send({ name, password: u.password });
      expect(res.status).toBe(200);
    }
    await t.close();
  });

  test('when a password has outer spaces, then it is kept exactly as typed', async () => {
    const t = await makeApp();
    await t.makeUser({ name: 'spacey', password: '  spaced pass  ' });
    expect((await t.http().post('/login').send({ name: 'spacey', password: 'spaced pass' })).status).toBe(401);
    expect((await t.http().post('/login').send({ name: 'spacey', password: '  spaced pass  ' })).status).toBe(200);
    await t.close();
  });

  test('when the user is disabled, then the right password gets the same answer as a wrong one', async () => {
    const t = await makeApp();
    const u = await t.makeUser({ name: 'dave' });
    await t.app.services.auth.setDisabled('dave', true);
    const res = await t.http().post('/login').send({ name: 'dave', password: u.password });
    expectContract(res, 'POST', '/login');
    expect(res.status).toBe(401);
    expect(res.body.code).toBe('invalid_credentials');
    await t.close();
  });

  test('when the hashing parameters were raised, then a login rehashes the password with the new ones', async () => {
    const store = await openStore('sqlite::memory:');
    const logger = createLogger('silent');
    const before = loadConfig({ NODE_ENV: 'test', JWT_SECRET: TEST_SECRET });
    const app1 = createApp({ config: before, store, passwords: await testPasswords(), logger });
    const u = await app1.services.auth.addUser('erin', 'erin-password', 'user');
    expect((await store.findUserById(u.id))?.passwordHash).toContain('m=19456,t=2,p=1');

    const after = loadConfig({ NODE_ENV: 'test', JWT_SECRET: TEST_SECRET, ARGON2_TIME_COST: '3' });
    const app2 = createApp({ config: after, store, passwords: await createPasswords(after.argon2), logger });
    await request(app2.callback()).post('/login').send({ name: 'erin', password: 'erin-password' }).expect(200);
    const rehashed = (await store.findUserById(u.id))?.passwordHash;
    expect(rehashed).toContain('m=19456,t=3,p=1');
    await request(app2.callback()).post('/login').send({ name: 'erin', password: 'erin-password' }).expect(200);
    await store.close();
  });
});

describe('GET /user', () => {
  test('when the token is valid, then it answers id, name and role', async () => {
    const t = await makeApp();
    const u = await t.makeUser({ name: 'frank', role: 'admin' });
    const { access } = await t.login('frank', u.password);
    const res = await t.http().get('/user').set('Authorization', `Bearer ${access}`);
    expectContract(res, 'GET', '/user');
    expect(res.body).toEqual({ id: u.id, name: 'frank', role: 'admin' });
    expect(res.headers['cache-control']).toBe('no-store');
    await t.close();
  });

  test('when no token is sent, then 401 problem with a plain Bearer challenge', async () => {
    const t = await makeApp();
    const res = await t.http().get('/user');
    expectContract(res, 'GET', '/user');
    expect(res.status).toBe(401);
    expect(res.headers['www-authenticate']).toBe('Bearer realm="api"');
    expect(res.body.code).toBe('missing_token');
    await t.close();
  });

  test('when a bad token is sent, then 401 with error="invalid_token"', async () => {
    const t = await makeApp();
    const res = await t.http().get('/user').set('Authorization', 'Bearer not.a.token');
    expectContract(res, 'GET', '/user');
    expect(res.status).toBe(401);
    expect(res.headers['www-authenticate']).toMatch(/^Bearer realm="api", error="invalid_token"/);
    await t.close();
  });
});

describe('public paths come from the contract', () => {
  test('when an operation says security: [], then it answers without a token, and every other operation demands one', async () => {
    const t = await makeApp();
    for (const op of t.app.services.contract.operations) {
      const path = op.path.replace(/\{[^}]+\}/g, 'abc');
      const req = t.http()[op.method as 'get'](path);
      const res = op.body ? await req.set('Content-Type', 'application/json').send('{}') : await req;
      // A public operation may still refuse (POST /refresh without a refresh token), but never
      // for want of an access token.
      if (op.public) expect([op.id, res.body?.code]).not.toEqual([op.id, 'missing_token']);
      else expect([op.id, res.status, res.body.code]).toEqual([op.id, 401, 'missing_token']);
    }
    await t.close();
  });

  test('when the pages are asked for without a token, then they are served', async () => {
    const t = await makeApp();
    for (const path of ['/', '/login']) {
      const res = await t.http().get(path);
      expect([path, res.status, res.headers['content-type']]).toEqual([path, 200, 'text/html; charset=utf-8']);
    }
    await t.close();
  });
});

describe('POST /login: the cookie flow of the pages', () => {
  const setCookie = (res: request.Response) => ([] as string[]).concat(res.headers['set-cookie'] ?? []).find((c) => c.startsWith('refresh_token='));

  test('when the login asks for the cookie flow (refresh_token_in: cookie), then the refresh token is only in the httpOnly cookie, not in the JSON, and that cookie refreshes', async () => {
    const t = await makeApp();
    const u = await t.makeUser({ name: 'cora' });
    const res = expectContract(await t.http().post('/login').send({ name: 'cora', password: u.password, refresh_token_in: 'cookie' }), 'POST', '/login');
    expect(res.status).toBe(200);
    expect(Object.keys(res.body).sort()).toEqual(['access_token', 'expires_in', 'token_type']);
    const cookie = setCookie(res) as string;
    expect(cookie).toMatch(/^refresh_token=[\w-]{40,};.*httponly/i);
    const refreshed = expectContract(
      await t
        .http()
        .post('/refresh')
        .set('Cookie', cookie.split(';')[0] as string)
        .send({}),
      'POST',
      '/refresh',
    );
    expect(refreshed.status).toBe(200);
    expect(refreshed.body.refresh_token).toBeUndefined();
    await t.close();
  });

  test.each([
    ["leaves refresh_token_in out (the README's curl, API clients)", {}],
    ['says refresh_token_in: body', { refresh_token_in: 'body' }],
  ])('when the login %s, then the refresh token is in the JSON and in the cookie', async (_name, extra) => {
    const t = await makeApp();
    const u = await t.makeUser({ name: 'dora' });
    const res = expectContract(
      await t
        .http()
        .post('/login')
        .send({ name: 'dora', password: u.password, ...extra }),
      'POST',
      '/login',
    );
    expect(res.status).toBe(200);
    expect(res.body.refresh_token).toMatch(/^[\w-]{40,}$/);
    expect(setCookie(res)?.split(';')[0]).toBe(`refresh_token=${res.body.refresh_token}`);
    await t.close();
  });

  test('when refresh_token_in is neither body nor cookie, then 400 naming the field', async () => {
    const t = await makeApp();
    const u = await t.makeUser({ name: 'ezra' });
    const res = expectContract(await t.http().post('/login').send({ name: 'ezra', password: u.password, refresh_token_in: 'header' }), 'POST', '/login');
    expect(res.status).toBe(400);
    expect(res.body.errors).toEqual([expect.objectContaining({ pointer: '/body/refresh_token_in' })]);
    await t.close();
  });
});
