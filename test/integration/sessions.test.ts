import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import jwt from 'jsonwebtoken';
import type { Response } from 'supertest';
import { openChildToken } from '../../src/services/tokens';
import { openStore } from '../../src/store/open-store';
import type { Store } from '../../src/store/store';
import { expectContract } from '../support/contract-check';
import { makeApp, type TestApp } from '../support/make-app';

const SECOND = 1_000;

/** The attributes of the `refresh_token` Set-Cookie of a response, names lower-cased. */
function refreshCookie(res: Response): { value: string; attrs: Map<string, string> } | undefined {
  const raw = ([] as string[]).concat(res.headers['set-cookie'] ?? []).find((c) => c.startsWith('refresh_token='));
  if (raw === undefined) return undefined;
  const [pair, ...rest] = raw.split(';').map((s) => s.trim());
  const attrs = new Map<string, string>();
  for (const a of rest) {
    const eq = a.indexOf('=');
    attrs.set((eq < 0 ? a : a.slice(0, eq)).toLowerCase(), eq < 0 ? '' : a.slice(eq + 1));
  }
  return { value: (pair as string).slice('refresh_token='.length), attrs };
}

async function getUser(t: TestApp, access: string): Promise<Response> {
  return expectContract(await t.http().get('/user').set('Authorization', `Bearer ${access}`), 'GET', '/user');
}

async function refreshByBody(t: TestApp, refresh: string): Promise<Response> {
  return expectContract(await t.http().post('/refresh').send({ refresh_token: refresh }), 'POST', '/refresh');
}

async function refreshByCookie(t: TestApp, cookie: string): Promise<Response> {
  const res = await t.http().post('/refresh').set('Cookie', cookie).set('Content-Type', 'application/json').send('{}');
  return expectContract(res, 'POST', '/refresh');
}

async function logout(t: TestApp, access: string): Promise<Response> {
  return expectContract(await t.http().post('/logout').set('Authorization', `Bearer ${access}`), 'POST', '/logout');
}

/** Asserts a 401 problem with the RFC 6750 challenge and the given code. */
function expect401(res: Response, code: string): void {
  expect([res.status, res.body.code]).toEqual([401, code]);
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(res.headers['www-authenticate']).toMatch(/^Bearer realm="api", error="invalid_token"/);
}

async function loginAs(t: TestApp, name: string, password: string, userAgent?: string): Promise<Response> {
  const req = t.http().post('/login');
  if (userAgent !== undefined) req.set('User-Agent', userAgent);
  const res = expectContract(await req.send({ name, password }), 'POST', '/login');
  expect(res.status).toBe(200);
  return res;
}

describe('POST /login: what the tokens are', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sessions-test-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('when a user logs in, then the refresh token is 256 random bits and the database holds only its SHA-256', async () => {
    const file = path.join(dir, 'auth.db');
    const t = await makeApp({ DATABASE_URL: `sqlite:${file}` });
    const u = await t.makeUser({ name: 'alice' });
    const { refresh } = await t.login('alice', u.password);
    expect(refresh).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(Buffer.from(refresh, 'base64url')).toHaveLength(32);

    const db = new SqliteDatabase(file, { readonly: true });
    try {
      const rows = db.prepare('select * from refresh_tokens').all() as Record<string, unknown>[];
      expect(rows).toHaveLength(1);
      expect(rows[0]?.['token_hash']).toBe(createHash('sha256').update(refresh).digest('hex'));
      // Nowhere in the database, in any table, is the token itself.
      const tables = db.prepare("select name from sqlite_master where type = 'table'").all() as { name: string }[];
      for (const { name } of tables) {
        const dump = JSON.stringify(db.prepare(`select * from "${name}"`).all());
        expect([name, dump.includes(refresh)]).toEqual([name, false]);
      }
    } finally {
      db.close();
    }
    await t.close();
  });

  test('when a refresh token is rotated, then the store keeps the new one hashed, in the same family, linked to its parent, and the old one marked used', async () => {
    const file = path.join(dir, 'auth.db');
    const t = await makeApp({ DATABASE_URL: `sqlite:${file}`, REFRESH_TOKEN_TTL: '3600' });
    const u = await t.makeUser({ name: 'abe' });
    const first = await t.login('abe', u.password);
    const loginAt = t.clock.now();
    t.clock.advance(60 * SECOND);
    const res = expectContract(await t.http().post('/refresh').send({ refresh_token: first.refresh }), 'POST', '/refresh');
    expect(res.status).toBe(200);
    const sha = (s: string) => createHash('sha256').update(s).digest('hex');
    const sid = (jwt.decode(first.access) as jwt.JwtPayload)['sid'];

    const db = new SqliteDatabase(file, { readonly: true });
    try {
      const rows = db.prepare('select * from refresh_tokens order by created_at').all() as { child_enc: string | null }[];
      expect(rows).toEqual([
        {
          token_hash: sha(first.refresh),
          session_id: sid,
          parent_hash: null,
          created_at: loginAt,
          expires_at: loginAt + 3600 * SECOND,
          used_at: loginAt + 60 * SECOND,
          child_enc: expect.any(String),
        },
        {
          token_hash: sha(res.body.refresh_token),
          session_id: sid,
          parent_hash: sha(first.refresh),
          created_at: loginAt + 60 * SECOND,
          expires_at: loginAt + 3660 * SECOND,
          used_at: null,
          child_enc: null,
        },
      ]);
      // The successor is kept only sealed: the old token opens it, nothing else does.
      const sealed = rows[0]?.child_enc as string;
      expect(sealed).not.toContain(res.body.refresh_token);
      expect(openChildToken(first.refresh, sealed)).toBe(res.body.refresh_token);
      expect(openChildToken(res.body.refresh_token, sealed)).toBeUndefined();
      expect(db.prepare('select id, last_used_at, revoked_at from sessions').all()).toEqual([
        { id: sid, last_used_at: loginAt + 60 * SECOND, revoked_at: null },
      ]);
    } finally {
      db.close();
    }
    await t.close();
  });

  test('when a user logs in, then the access token carries exactly the documented claims plus sid, and lives ACCESS_TOKEN_TTL', async () => {
    const t = await makeApp({ ACCESS_TOKEN_TTL: '600' });
    const u = await t.makeUser({ name: 'bob', role: 'admin' });
    const res = await loginAs(t, 'bob', u.password);
    expect(res.body.expires_in).toBe(600);
    const decoded = jwt.decode(res.body.access_token, { complete: true }) as jwt.Jwt;
    expect(decoded.header).toEqual({ alg: 'HS256', typ: 'JWT', kid: t.app.services.keyring.signer().kid });
    const claims = decoded.payload as jwt.JwtPayload;
    expect(Object.keys(claims).sort()).toEqual(['aud', 'exp', 'iat', 'iss', 'jti', 'name', 'role', 'sid', 'sub']);
    expect(claims).toMatchObject({ sub: u.id, name: 'bob', role: 'admin', iss: t.config.jwtIssuer, aud: t.config.jwtAudience });
    expect(claims.iat).toBe(Math.floor(t.clock.now() / SECOND));
    expect((claims.exp as number) - (claims.iat as number)).toBe(600);
    const sessions = await t.store.listActiveSessions(u.id, t.clock.now());
    expect(sessions.map((s) => s.id)).toEqual([claims['sid']]);
    await t.close();
  });

  test('when two logins happen, then each access token has its own jti and each login its own session', async () => {
    const t = await makeApp();
    const u = await t.makeUser({ name: 'carol' });
    const a = jwt.decode((await loginAs(t, 'carol', u.password)).body.access_token) as jwt.JwtPayload;
    const b = jwt.decode((await loginAs(t, 'carol', u.password)).body.access_token) as jwt.JwtPayload;
    expect(a.jti).not.toBe(b.jti);
    expect(a['sid']).not.toBe(b['sid']);
    await t.close();
  });
});

describe('the refresh cookie', () => {
  const cases: [string, { env: Record<string, string>; headers: Record<string, string>; secure: boolean }][] = [
    ['when COOKIE_SECURE=auto over plain http, then it is not Secure', { env: {}, headers: {}, secure: false }],
    ['when COOKIE_SECURE=true over plain http (TLS ends at a proxy), then it is Secure', { env: { COOKIE_SECURE: 'true' }, headers: {}, secure: true }],
    [
      'when COOKIE_SECURE=auto behind a trusted proxy that says https, then it is Secure',
      { env: { TRUST_PROXY: 'true' }, headers: { 'X-Forwarded-Proto': 'https' }, secure: true },
    ],
    [
      'when COOKIE_SECURE=auto and an untrusted client claims https, then it is not Secure',
      { env: {}, headers: { 'X-Forwarded-Proto': 'https' }, secure: false },
    ],
    [
      'when COOKIE_SECURE=false behind a proxy that says https, then it is not Secure',
      { env: { COOKIE_SECURE: 'false', TRUST_PROXY: 'true' }, headers: { 'X-Forwarded-Proto': 'https' }, secure: false },
    ],
  ];
  test.each(cases)('%s; it is always HttpOnly, SameSite=Strict, Path=/refresh', async (_name, { env, headers, secure }) => {
    const t = await makeApp(env);
    const u = await t.makeUser({ name: 'dora' });
    const res = expectContract(await t.http().post('/login').set(headers).send({ name: 'dora', password: u.password }), 'POST', '/login');
    expect(res.status).toBe(200);
    const cookie = refreshCookie(res);
    expect(cookie?.value).toBe(res.body.refresh_token);
    expect(cookie?.attrs.get('httponly')).toBe('');
    expect(cookie?.attrs.get('samesite')?.toLowerCase()).toBe('strict');
    expect(cookie?.attrs.get('path')).toBe('/refresh');
    expect(cookie?.attrs.has('domain')).toBe(false);
    expect(cookie?.attrs.has('secure')).toBe(secure);
    await t.close();
  });
});

describe('POST /refresh', () => {
  test('when a refresh token is sent in the body, then a new pair comes back, both tokens new, and the new access token works', async () => {
    const t = await makeApp();
    const u = await t.makeUser({ name: 'erin' });
    const first = await t.login('erin', u.password);
    t.clock.advance(60 * SECOND);
    const res = await refreshByBody(t, first.refresh);
    expect(res.status).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.body).toEqual({
      access_token: expect.any(String),
      token_type: 'Bearer',
      expires_in: t.config.accessTokenTtl,
      refresh_token: expect.any(String),
    });
    expect(res.body.refresh_token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(res.body.refresh_token).not.toBe(first.refresh);
    expect(res.body.access_token).not.toBe(first.access);
    // The same session (refresh family) goes on.
    const before = jwt.decode(first.access) as jwt.JwtPayload;
    const after = jwt.decode(res.body.access_token) as jwt.JwtPayload;
    expect(after['sid']).toBe(before['sid']);
    expect(after.iat).toBe(Math.floor(t.clock.now() / SECOND));
    expect(refreshCookie(res)?.value).toBe(res.body.refresh_token);
    expect((await getUser(t, res.body.access_token)).body).toEqual({ id: u.id, name: 'erin', role: 'user' });
    // And the new refresh token rotates in its turn.
    t.clock.advance(60 * SECOND);
    expect((await refreshByBody(t, res.body.refresh_token)).status).toBe(200);
    await t.close();
  });

  test('when the refresh token comes in the cookie with a JSON body, then a new pair comes back and the cookie is replaced', async () => {
    const t = await makeApp();
    const u = await t.makeUser({ name: 'fay' });
    const { cookie, refresh } = await t.login('fay', u.password);
    expect(cookie).toBe(`refresh_token=${refresh}`);
    const res = await refreshByCookie(t, cookie);
    expect(res.status).toBe(200);
    const next = refreshCookie(res);
    // The new refresh token is only in the httpOnly cookie, never in what page scripts read.
    expect(res.body).toEqual({ access_token: expect.any(String), token_type: 'Bearer', expires_in: t.config.accessTokenTtl });
    expect(next?.value).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(next?.value).not.toBe(refresh);
    expect(next?.attrs.get('path')).toBe('/refresh');
    expect((await refreshByCookie(t, `refresh_token=${next?.value}`)).status).toBe(200);
    await t.close();
  });

  test('when both a cookie and a body token are sent, then the body wins and the cookie token is left unspent', async () => {
    const t = await makeApp();
    const u = await t.makeUser({ name: 'flo' });
    const browser = await t.login('flo', u.password);
    const api = await t.login('flo', u.password);
    const res = expectContract(await t.http().post('/refresh').set('Cookie', browser.cookie).send({ refresh_token: api.refresh }), 'POST', '/refresh');
    expect(res.status).toBe(200);
    const sid = (token: string) => (jwt.decode(token) as jwt.JwtPayload)['sid'];
    expect(sid(res.body.access_token)).toBe(sid(api.access));
    expect((await refreshByCookie(t, browser.cookie)).status).toBe(200);
    await t.close();
  });

  test.each([
    ['text/plain', '{}'],
    ['application/x-www-form-urlencoded', 'a=b'],
    ['multipart/form-data; boundary=x', '--x--'],
  ])('when the cookie comes with a %s body (a cross-site form could send it), then 415 and the token is not spent', async (type, body) => {
    const t = await makeApp();
    const u = await t.makeUser({ name: 'gus' });
    const { cookie } = await t.login('gus', u.password);
    const res = expectContract(await t.http().post('/refresh').set('Cookie', cookie).set('Content-Type', type).send(body), 'POST', '/refresh');
    expect([res.status, res.body.code]).toEqual([415, 'unsupported_media_type']);
    expect(refreshCookie(res)).toBeUndefined();
    expect((await refreshByCookie(t, cookie)).status).toBe(200);
    await t.close();
  });

  test('when the cookie comes with no body at all, then 415 and the token is not spent', async () => {
    const t = await makeApp();
    const u = await t.makeUser({ name: 'gwen' });
    const { cookie } = await t.login('gwen', u.password);
    const res = expectContract(await t.http().post('/refresh').set('Cookie', cookie), 'POST', '/refresh');
    expect([res.status, res.body.code]).toEqual([415, 'unsupported_media_type']);
    expect((await refreshByCookie(t, cookie)).status).toBe(200);
    await t.close();
  });

  test('when neither a cookie nor a body token is sent, then 401 invalid_refresh_token', async () => {
    const t = await makeApp();
    const res = expectContract(await t.http().post('/refresh').send({}), 'POST', '/refresh');
    expect401(res, 'invalid_refresh_token');
    await t.close();
  });

  test('when an unknown refresh token is sent, then 401 invalid_refresh_token and a cookie one is cleared', async () => {
    const t = await makeApp();
    expect401(await refreshByBody(t, 'A'.repeat(43)), 'invalid_refresh_token');
    const res = await refreshByCookie(t, `refresh_token=${'B'.repeat(43)}`);
    expect401(res, 'invalid_refresh_token');
    const cleared = refreshCookie(res);
    expect(cleared?.value).toBe('');
    expect(new Date(cleared?.attrs.get('expires') ?? '').getTime()).toBe(0);
    await t.close();
  });

  test('when a used refresh token is presented again after the reuse interval, then the whole family is revoked and a security event is logged', async () => {
    const t = await makeApp();
    const u = await t.makeUser({ name: 'hal' });
    const first = await t.login('hal', u.password);
    const other = await t.login('hal', u.password);
    const rotated = await refreshByBody(t, first.refresh);
    expect(rotated.status).toBe(200);
    // REFRESH_REUSE_INTERVAL is 10 s by default: this is past it.
    t.clock.advance(10 * SECOND);

    const replay = await refreshByBody(t, first.refresh);
    expect401(replay, 'refresh_token_reused');
    // The family is gone: the newest refresh token and the newest access token with it.
    expect401(await refreshByBody(t, rotated.body.refresh_token), 'invalid_refresh_token');
    expect401(await getUser(t, rotated.body.access_token), 'invalid_token');
    expect401(await getUser(t, first.access), 'invalid_token');
    // Another session of the same user is not part of the family.
    expect((await getUser(t, other.access)).status).toBe(200);
    expect((await refreshByBody(t, other.refresh)).status).toBe(200);

    const sid = (jwt.decode(first.access) as jwt.JwtPayload)['sid'];
    const events = t.logs.lines().filter((l) => l['event'] === 'refresh_token_reused');
    expect(events).toEqual([expect.objectContaining({ level: 40, security: true, sessionId: sid })]);
    expect(t.logs.text()).not.toContain(first.refresh);
    expect((await t.store.findSession(sid))?.revokedAt).toBe(t.clock.now());
    await t.close();
  });

  test('when a refresh is retried within the reuse interval (its answer was lost), then it gets the same current refresh token and a working access token, and the session goes on', async () => {
    const t = await makeApp();
    const u = await t.makeUser({ name: 'ida' });
    const first = await t.login('ida', u.password);
    const rotated = await refreshByBody(t, first.refresh);
    expect(rotated.status).toBe(200);
    t.clock.advance(9 * SECOND);
    const retried = await refreshByBody(t, first.refresh);
    expect(retried.status).toBe(200);
    // The same token the lost answer carried: the client and the store agree again.
    expect(retried.body.refresh_token).toBe(rotated.body.refresh_token);
    expect((await getUser(t, retried.body.access_token)).status).toBe(200);
    expect((await getUser(t, rotated.body.access_token)).status).toBe(200);
    expect((await refreshByBody(t, retried.body.refresh_token)).status).toBe(200);
    expect(t.logs.lines().filter((l) => l['event'] === 'refresh_token_reused')).toEqual([]);
    expect(t.logs.lines().filter((l) => l['event'] === 'refresh_retried')).toEqual([expect.objectContaining({ level: 30 })]);
    expect(t.logs.text()).not.toContain(rotated.body.refresh_token);
    await t.close();
  });

  test('when the other tab has rotated again since, then a retry within the interval follows the chain to the token now current', async () => {
    const t = await makeApp();
    const u = await t.makeUser({ name: 'ivo' });
    const first = await t.login('ivo', u.password);
    const second = await refreshByBody(t, first.refresh);
    t.clock.advance(2 * SECOND);
    const third = await refreshByBody(t, second.body.refresh_token);
    t.clock.advance(2 * SECOND);
    const retried = await refreshByBody(t, first.refresh);
    expect(retried.status).toBe(200);
    expect(retried.body.refresh_token).toBe(third.body.refresh_token);
    await t.close();
  });

  test('when the session was logged out meanwhile, then a retry within the interval is refused and nothing is logged as a replay', async () => {
    const t = await makeApp();
    const u = await t.makeUser({ name: 'ike' });
    const first = await t.login('ike', u.password);
    const rotated = await refreshByBody(t, first.refresh);
    expect((await logout(t, rotated.body.access_token)).status).toBe(204);
    expect401(await refreshByBody(t, first.refresh), 'invalid_refresh_token');
    expect(t.logs.lines().filter((l) => l['event'] === 'refresh_token_reused')).toEqual([]);
    await t.close();
  });

  test('when REFRESH_REUSE_INTERVAL is 0, then any second use is a replay that ends the session', async () => {
    const t = await makeApp({ REFRESH_REUSE_INTERVAL: '0' });
    const u = await t.makeUser({ name: 'ina' });
    const first = await t.login('ina', u.password);
    expect((await refreshByBody(t, first.refresh)).status).toBe(200);
    expect401(await refreshByBody(t, first.refresh), 'refresh_token_reused');
    await t.close();
  });

  test('when many refreshes with the same token race, then every one succeeds with the same new refresh token, and the session goes on', async () => {
    const t = await makeApp();
    const u = await t.makeUser({ name: 'jay' });
    let { refresh } = await t.login('jay', u.password);
    // A few rounds, each racing the token of the round before.
    for (let round = 0; round < 5; round += 1) {
      const results = await Promise.all(Array.from({ length: 8 }, () => refreshByBody(t, refresh)));
      expect([round, results.map((r) => r.status)]).toEqual([round, Array(8).fill(200)]);
      const tokens = new Set(results.map((r) => r.body.refresh_token as string));
      expect([round, tokens.size]).toEqual([round, 1]);
      refresh = [...tokens][0] as string;
      for (const r of results) expect((await getUser(t, r.body.access_token)).status).toBe(200);
      t.clock.advance(SECOND);
    }
    expect((await refreshByBody(t, refresh)).status).toBe(200);
    expect(t.logs.lines().filter((l) => l['event'] === 'refresh_token_reused')).toEqual([]);
    await t.close();
  });

  test('when two tabs refresh with the same cookie at once, then both get 200 and set the same cookie; neither clears it', async () => {
    const t = await makeApp();
    const u = await t.makeUser({ name: 'joy' });
    const { cookie } = await t.login('joy', u.password);
    const results = await Promise.all([refreshByCookie(t, cookie), refreshByCookie(t, cookie)]);
    expect(results.map((r) => r.status)).toEqual([200, 200]);
    const set = results.map((r) => refreshCookie(r));
    expect(set[0]?.value).toBeTruthy();
    expect(set[1]?.value).toBe(set[0]?.value);
    // A clearing cookie expires in 1970; these expire in the future.
    expect(set.map((c) => Date.parse(c?.attrs.get('expires') ?? '') > Date.now())).toEqual([true, true]);
    expect((await refreshByCookie(t, `refresh_token=${set[0]?.value}`)).status).toBe(200);
    await t.close();
  });

  test('when a refresh token is not used for REFRESH_TOKEN_TTL, then it expires; a second earlier it still works', async () => {
    const t = await makeApp({ REFRESH_TOKEN_TTL: '3600', SESSION_MAX_AGE: '86400' });
    const u = await t.makeUser({ name: 'kim' });
    const a = await t.login('kim', u.password);
    const b = await t.login('kim', u.password);
    t.clock.advance(3599 * SECOND);
    expect((await refreshByBody(t, a.refresh)).status).toBe(200);
    t.clock.advance(1 * SECOND);
    expect401(await refreshByBody(t, b.refresh), 'invalid_refresh_token');
    await t.close();
  });

  test('when a session is refreshed regularly, then it still ends at SESSION_MAX_AGE, and the last tokens do not outlive it', async () => {
    const t = await makeApp({ ACCESS_TOKEN_TTL: '3600', REFRESH_TOKEN_TTL: '3600', SESSION_MAX_AGE: '7200' });
    const u = await t.makeUser({ name: 'lea' });
    let { refresh } = await t.login('lea', u.password);
    const start = t.clock.now();
    for (const at of [3000, 6000]) {
      t.clock.set(start + at * SECOND);
      const res = await refreshByBody(t, refresh);
      expect([at, res.status]).toEqual([at, 200]);
      refresh = res.body.refresh_token;
      if (at === 6000) {
        // 1200 s of the session are left: the access token is cut short to match.
        expect(res.body.expires_in).toBe(1200);
        const claims = jwt.decode(res.body.access_token) as jwt.JwtPayload;
        expect(claims.exp).toBe(Math.floor(start / SECOND) + 7200);
        // The cookie too: koa's cookies turn maxAge into Expires from the wall clock.
        const expires = new Date(refreshCookie(res)?.attrs.get('expires') ?? 0).getTime();
        expect(Math.abs(expires - Date.now() - 1200 * SECOND)).toBeLessThan(5 * SECOND);
      }
    }
    t.clock.set(start + 7200 * SECOND - 1);
    const last = await refreshByBody(t, refresh);
    expect(last.status).toBe(200);
    t.clock.set(start + 7200 * SECOND);
    expect401(await refreshByBody(t, last.body.refresh_token), 'invalid_refresh_token');
    await t.close();
  });

  test('when the user is disabled, then every session ends: access tokens 401 and refresh tokens 401', async () => {
    const t = await makeApp();
    const u = await t.makeUser({ name: 'max' });
    const a = await t.login('max', u.password);
    const b = await t.login('max', u.password);
    await t.app.services.auth.setDisabled('max', true);
    for (const s of [a, b]) {
      expect401(await getUser(t, s.access), 'invalid_token');
      expect401(await refreshByBody(t, s.refresh), 'invalid_refresh_token');
    }
    await t.close();
  });
});

describe('POST /logout', () => {
  test('when a session logs out, then its access token and its refresh token (body or cookie) are refused from that moment, and the cookie is cleared', async () => {
    const t = await makeApp();
    const u = await t.makeUser({ name: 'ned' });
    const s = await t.login('ned', u.password);
    const other = await t.login('ned', u.password);
    expect((await getUser(t, s.access)).status).toBe(200);

    const res = expectContract(await t.http().post('/logout').set('Authorization', `Bearer ${s.access}`), 'POST', '/logout');
    expect(res.status).toBe(204);
    expect(res.text).toBe('');
    const cleared = refreshCookie(res);
    expect(cleared?.value).toBe('');
    expect(cleared?.attrs.get('path')).toBe('/refresh');
    expect(new Date(cleared?.attrs.get('expires') ?? '').getTime()).toBe(0);

    // No clock movement: refused at once, not when the token expires.
    const again = await getUser(t, s.access);
    expect401(again, 'invalid_token');
    expect(again.body.detail).toBe('The access token has been revoked.');
    expect401(await refreshByBody(t, s.refresh), 'invalid_refresh_token');
    expect401(await refreshByCookie(t, s.cookie), 'invalid_refresh_token');
    expect401(expectContract(await t.http().post('/logout').set('Authorization', `Bearer ${s.access}`), 'POST', '/logout'), 'invalid_token');
    // The other session of the same user goes on.
    expect((await getUser(t, other.access)).status).toBe(200);
    expect((await refreshByBody(t, other.refresh)).status).toBe(200);
    await t.close();
  });

  test('when a refreshed session logs out, then the access tokens issued before the refresh are refused too', async () => {
    const t = await makeApp();
    const u = await t.makeUser({ name: 'ola' });
    const s = await t.login('ola', u.password);
    const rotated = await refreshByBody(t, s.refresh);
    expect(rotated.status).toBe(200);
    expect((await logout(t, rotated.body.access_token)).status).toBe(204);
    expect401(await getUser(t, s.access), 'invalid_token');
    expect401(await getUser(t, rotated.body.access_token), 'invalid_token');
    expect401(await refreshByBody(t, rotated.body.refresh_token), 'invalid_refresh_token');
    await t.close();
  });
});

const IPHONE_SAFARI = 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1';
const WINDOWS_CHROME = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36';

describe('GET /sessions and DELETE /sessions/{id}', () => {
  async function listSessions(t: TestApp, access: string): Promise<Response> {
    return expectContract(await t.http().get('/sessions').set('Authorization', `Bearer ${access}`), 'GET', '/sessions');
  }

  test('when a user has two sessions, then GET /sessions lists both, newest first, with created, last used, address, user agent, browser, OS and which is current', async () => {
    const t = await makeApp();
    const u = await t.makeUser({ name: 'pia' });
    const t0 = t.clock.now();
    const laptop = await loginAs(t, 'pia', u.password, WINDOWS_CHROME);
    t.clock.advance(10 * SECOND);
    const phone = await loginAs(t, 'pia', u.password, IPHONE_SAFARI);
    t.clock.advance(50 * SECOND);
    expect((await refreshByBody(t, laptop.body.refresh_token)).status).toBe(200);
    const sid = (access: string) => (jwt.decode(access) as jwt.JwtPayload)['sid'];

    const res = await listSessions(t, phone.body.access_token);
    expect(res.status).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.body).toEqual([
      {
        id: sid(phone.body.access_token),
        created_at: new Date(t0 + 10 * SECOND).toISOString(),
        last_used_at: new Date(t0 + 10 * SECOND).toISOString(),
        address: '127.0.0.1',
        user_agent: IPHONE_SAFARI,
        browser: 'Safari 17.5',
        os: 'iOS 17.5',
        current: true,
      },
      {
        id: sid(laptop.body.access_token),
        created_at: new Date(t0).toISOString(),
        last_used_at: new Date(t0 + 60 * SECOND).toISOString(),
        address: '127.0.0.1',
        user_agent: WINDOWS_CHROME,
        browser: 'Chrome 131.0.0.0',
        os: 'Windows 10',
        current: false,
      },
    ]);
    // Nobody else's sessions, and no ended ones.
    const other = await t.makeUser({ name: 'quinn' });
    const q = await t.login('quinn', other.password);
    expect((await listSessions(t, q.access)).body).toEqual([expect.objectContaining({ id: sid(q.access), current: true })]);
    expect((await logout(t, laptop.body.access_token)).status).toBe(204);
    expect((await listSessions(t, phone.body.access_token)).body.map((s: { id: string }) => s.id)).toEqual([sid(phone.body.access_token)]);
    await t.close();
  });

  test('when a user ends another of their sessions from the list, then that session is refused at once and theirs goes on', async () => {
    const t = await makeApp();
    const u = await t.makeUser({ name: 'rae' });
    const lost = await t.login('rae', u.password);
    const mine = await t.login('rae', u.password);
    const listed = (await listSessions(t, mine.access)).body as { id: string; current: boolean }[];
    const target = listed.find((s) => !s.current);
    expect(target).toBeDefined();

    const res = expectContract(await t.http().delete(`/sessions/${target?.id}`).set('Authorization', `Bearer ${mine.access}`), 'DELETE', '/sessions/{id}');
    expect(res.status).toBe(204);
    expect(res.text).toBe('');
    expect401(await getUser(t, lost.access), 'invalid_token');
    expect401(await refreshByBody(t, lost.refresh), 'invalid_refresh_token');
    expect((await getUser(t, mine.access)).status).toBe(200);
    expect((await listSessions(t, mine.access)).body).toEqual([expect.objectContaining({ current: true })]);
    expect((await refreshByBody(t, mine.refresh)).status).toBe(200);

    // Ending it twice: it is no longer an active session.
    const twice = expectContract(await t.http().delete(`/sessions/${target?.id}`).set('Authorization', `Bearer ${mine.access}`), 'DELETE', '/sessions/{id}');
    expect([twice.status, twice.body.code]).toEqual([404, 'session_not_found']);
    await t.close();
  });

  test('when a user ends their current session from the list, then its access token is refused from then on', async () => {
    const t = await makeApp();
    const u = await t.makeUser({ name: 'sam' });
    const s = await t.login('sam', u.password);
    const sid = (jwt.decode(s.access) as jwt.JwtPayload)['sid'];
    const res = expectContract(await t.http().delete(`/sessions/${sid}`).set('Authorization', `Bearer ${s.access}`), 'DELETE', '/sessions/{id}');
    expect(res.status).toBe(204);
    expect401(await getUser(t, s.access), 'invalid_token');
    expect401(await refreshByBody(t, s.refresh), 'invalid_refresh_token');
    await t.close();
  });

  test("when a user names someone else's session or an unknown id, then 404 and the other session goes on", async () => {
    const t = await makeApp();
    const victim = await t.makeUser({ name: 'tia' });
    const attacker = await t.makeUser({ name: 'uma' });
    const v = await t.login('tia', victim.password);
    const a = await t.login('uma', attacker.password);
    const victimSid = (jwt.decode(v.access) as jwt.JwtPayload)['sid'];
    for (const id of [victimSid, 'no-such-session']) {
      const res = expectContract(await t.http().delete(`/sessions/${id}`).set('Authorization', `Bearer ${a.access}`), 'DELETE', '/sessions/{id}');
      expect([id, res.status, res.body.code]).toEqual([id, 404, 'session_not_found']);
    }
    expect((await getUser(t, v.access)).status).toBe(200);
    expect((await refreshByBody(t, v.refresh)).status).toBe(200);
    await t.close();
  });

  test('when the session id breaks the contract pattern, then 400 before anything is looked up', async () => {
    const t = await makeApp();
    const u = await t.makeUser({ name: 'val' });
    const s = await t.login('val', u.password);
    const res = expectContract(
      await t
        .http()
        .delete(`/sessions/${'x'.repeat(65)}`)
        .set('Authorization', `Bearer ${s.access}`),
      'DELETE',
      '/sessions/{id}',
    );
    expect([res.status, res.body.code]).toEqual([400, 'invalid_request']);
    await t.close();
  });
});

describe('PUT /user/password', () => {
  test('when the password changes, then every session of the user ends: old access tokens 401, old refresh tokens 401', async () => {
    const t = await makeApp();
    const u = await t.makeUser({ name: 'wes' });
    const bystander = await t.makeUser({ name: 'xena' });
    const a = await t.login('wes', u.password);
    const b = await t.login('wes', u.password);
    const x = await t.login('xena', bystander.password);
    const newPassword = 'a-brand-new-password';

    const res = expectContract(
      await t.http().put('/user/password').set('Authorization', `Bearer ${a.access}`).send({ current_password: u.password, new_password: newPassword }),
      'PUT',
      '/user/password',
    );
    expect(res.status).toBe(204);
    for (const s of [a, b]) {
      expect401(await getUser(t, s.access), 'invalid_token');
      expect401(await refreshByBody(t, s.refresh), 'invalid_refresh_token');
    }
    expect((await getUser(t, x.access)).status).toBe(200);
    expect(expectContract(await t.http().post('/login').send({ name: 'wes', password: u.password }), 'POST', '/login').status).toBe(401);
    const fresh = await t.login('wes', newPassword);
    expect((await getUser(t, fresh.access)).status).toBe(200);
    await t.close();
  });

  test('when the current password is wrong, then 403 and no session ends', async () => {
    const t = await makeApp();
    const u = await t.makeUser({ name: 'yul' });
    const s = await t.login('yul', u.password);
    const res = expectContract(
      await t
        .http()
        .put('/user/password')
        .set('Authorization', `Bearer ${s.access}`)
        .send({ current_password: 'not-the-password', new_password: 'another-long-password' }),
      'PUT',
      '/user/password',
    );
    expect([res.status, res.body.code]).toEqual([403, 'invalid_current_password']);
    expect((await getUser(t, s.access)).status).toBe(200);
    expect((await refreshByBody(t, s.refresh)).status).toBe(200);
    await t.close();
  });
});

describe('the revocation check on a protected request', () => {
  /** Wraps a store so that every method call is counted. */
  function countingStore(store: Store): { store: Store; calls: string[] } {
    const calls: string[] = [];
    const proxy = new Proxy(store, {
      get(target, prop, receiver) {
        const value = Reflect.get(target, prop, receiver) as unknown;
        if (typeof value !== 'function') return value;
        return (...args: unknown[]) => {
          calls.push(String(prop));
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
    return { store: proxy, calls };
  }

  test('when authenticated GET /user requests are served, then the store is not touched, even with revocations on the list', async () => {
    const counted = countingStore(await openStore('sqlite::memory:'));
    const t = await makeApp({}, { store: counted.store });
    const u = await t.makeUser({ name: 'zed' });
    const s = await t.login('zed', u.password);
    const gone = await t.login('zed', u.password);
    expect((await logout(t, gone.access)).status).toBe(204);
    // The proxy does see the store calls of login and logout.
    expect(counted.calls).toEqual(expect.arrayContaining(['findUserByNameKey', 'createSession', 'revokeSession']));

    counted.calls.length = 0;
    for (let i = 0; i < 20; i += 1) expect((await getUser(t, s.access)).status).toBe(200);
    expect401(await getUser(t, gone.access), 'invalid_token');
    expect(counted.calls).toEqual([]);
    await t.close();
  });
});
