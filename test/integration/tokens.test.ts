import { createHmac, generateKeyPairSync } from 'node:crypto';
import jwt from 'jsonwebtoken';
import type { Response } from 'supertest';
import { expectContract } from '../support/contract-check';
import { makeApp, type TestApp } from '../support/make-app';

const SECOND = 1_000;

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

// The server's current HS256 key and its kid, set by setup(): forgeries sign with them to differ
// from a real token in one respect only.
let KEY: Buffer = Buffer.alloc(32);
let KID = '';

/** A user, a real login, and the claims of its access token to forge from. */
async function setup(env: Record<string, string> = {}) {
  const t = await makeApp(env);
  const signer = t.app.services.keyring.signer();
  KEY = signer.key.export();
  KID = signer.kid;
  const u = await t.makeUser({ name: 'alice' });
  const { access } = await t.login('alice', u.password);
  const claims = jwt.decode(access) as jwt.JwtPayload;
  return { t, u, access, claims };
}

async function getUser(t: TestApp, token: string): Promise<Response> {
  return expectContract(await t.http().get('/user').set('Authorization', `Bearer ${token}`), 'GET', '/user');
}

/** RFC 6750 §3: a refused token gets 401, a problem document and error="invalid_token". */
function expectInvalidToken(res: Response, detail = 'The access token is invalid.'): void {
  expect([res.status, res.body.code, res.body.detail]).toEqual([401, 'invalid_token', detail]);
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(res.headers['www-authenticate']).toBe(`Bearer realm="api", error="invalid_token", error_description="${detail}"`);
}

function without<T extends object>(o: T, key: string): T {
  const copy = { ...o } as Record<string, unknown>;
  delete copy[key];
  return copy as T;
}

describe('access tokens the server did not issue', () => {
  test('when a token is signed here with the same claims and key (the control for the forgeries below), then it is accepted', async () => {
    const { t, claims } = await setup();
    const token = jwt.sign({ ...claims, jti: 'another-jti' }, KEY, { algorithm: 'HS256', keyid: KID });
    const res = await getUser(t, token);
    expect([res.status, res.body.name]).toEqual([200, 'alice']);
    // The hand-made HMAC below (key confusion) is right when the header says HS256.
    const input = `${b64({ alg: 'HS256', typ: 'JWT', kid: KID })}.${b64(claims)}`;
    const manual = `${input}.${createHmac('sha256', KEY).update(input).digest('base64url')}`;
    expect((await getUser(t, manual)).status).toBe(200);
    await t.close();
  });

  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const forgeries: [string, (claims: jwt.JwtPayload) => string][] = [
    ['signed with another secret', (c) => jwt.sign(c, 'another-secret-that-is-at-least-32-bytes', { algorithm: 'HS256' })],
    ['with alg none and no signature', (c) => `${b64({ alg: 'none', typ: 'JWT', kid: KID })}.${b64(c)}.`],
    [
      'with alg none and the original signature',
      (c) => `${b64({ alg: 'none', typ: 'JWT', kid: KID })}.${b64(c)}.${jwt.sign(c, KEY, { keyid: KID }).split('.')[2]}`,
    ],
    ['signed HS512 with the right secret', (c) => jwt.sign(c, KEY, { algorithm: 'HS512', keyid: KID })],
    ['signed HS384 with the right secret', (c) => jwt.sign(c, KEY, { algorithm: 'HS384', keyid: KID })],
    ['signed RS256 with an RSA key', (c) => jwt.sign(c, privateKey, { algorithm: 'RS256' })],
    [
      'with an RS256 header over an HMAC of the secret (key confusion)',
      (c) => {
        const input = `${b64({ alg: 'RS256', typ: 'JWT', kid: KID })}.${b64(c)}`;
        return `${input}.${createHmac('sha256', KEY).update(input).digest('base64url')}`;
      },
    ],
    ['without exp', (c) => jwt.sign(without(c, 'exp'), KEY, { algorithm: 'HS256', keyid: KID })],
    ['with another issuer', (c) => jwt.sign({ ...c, iss: 'someone-else' }, KEY, { algorithm: 'HS256', keyid: KID })],
    ['without an issuer', (c) => jwt.sign(without(c, 'iss'), KEY, { algorithm: 'HS256', keyid: KID })],
    ['with another audience', (c) => jwt.sign({ ...c, aud: 'another-service' }, KEY, { algorithm: 'HS256', keyid: KID })],
    ['without an audience', (c) => jwt.sign(without(c, 'aud'), KEY, { algorithm: 'HS256', keyid: KID })],
    [
      'with a crit header naming an extension the server does not implement',
      (c) =>
        jwt.sign(c, KEY, {
          algorithm: 'HS256',
          keyid: KID,
          header: { alg: 'HS256', typ: 'JWT', crit: ['exp-policy'], 'exp-policy': 'strict' } as jwt.JwtHeader,
        }),
    ],
    ['with an empty crit header', (c) => jwt.sign(c, KEY, { algorithm: 'HS256', keyid: KID, header: { alg: 'HS256', crit: [] } as unknown as jwt.JwtHeader })],
    ['without sid', (c) => jwt.sign(without(c, 'sid'), KEY, { algorithm: 'HS256', keyid: KID })],
    ['without sub', (c) => jwt.sign(without(c, 'sub'), KEY, { algorithm: 'HS256', keyid: KID })],
    ['with an unknown role', (c) => jwt.sign({ ...c, role: 'root' }, KEY, { algorithm: 'HS256', keyid: KID })],
  ];
  test.each(forgeries)('when a token comes %s, then 401 invalid_token with a Bearer challenge', async (_name, forge) => {
    const { t, claims } = await setup();
    expectInvalidToken(await getUser(t, forge(claims)));
    await t.close();
  });

  test('when the payload of a real token is changed (role admin) and the signature kept, then 401 invalid_token', async () => {
    const { t, access, claims } = await setup();
    const [header, , signature] = access.split('.');
    const tampered = `${header}.${b64({ ...claims, role: 'admin' })}.${signature}`;
    expectInvalidToken(await getUser(t, tampered));
    const users = expectContract(await t.http().get('/users').set('Authorization', `Bearer ${tampered}`), 'GET', '/users');
    expectInvalidToken(users);
    // The untouched token still works, so the signature is what failed.
    expect((await getUser(t, access)).status).toBe(200);
    await t.close();
  });

  test.each([
    ['not a JWT at all', 'not-a-token'],
    ['two segments', 'abc.def'],
    ['a header that is not JSON', `${Buffer.from('{oops').toString('base64url')}.${b64({})}.sig`],
  ])('when the bearer value is %s, then 401 invalid_token', async (_name, token) => {
    const t = await makeApp();
    expectInvalidToken(await getUser(t, token));
    await t.close();
  });
});

describe('access token expiry, with the injected clock', () => {
  test('when the token expired less than CLOCK_SKEW ago, then it is still accepted; from CLOCK_SKEW on it is refused as expired', async () => {
    const { t, access, claims } = await setup({ ACCESS_TOKEN_TTL: '300', CLOCK_SKEW: '30' });
    const exp = (claims.exp as number) * SECOND;
    t.clock.set(exp - 1);
    expect((await getUser(t, access)).status).toBe(200);
    t.clock.set(exp + 29 * SECOND);
    expect((await getUser(t, access)).status).toBe(200);
    t.clock.set(exp + 30 * SECOND);
    expectInvalidToken(await getUser(t, access), 'The access token has expired.');
    t.clock.set(exp + 3600 * SECOND);
    expectInvalidToken(await getUser(t, access), 'The access token has expired.');
    await t.close();
  });

  test('when CLOCK_SKEW is 0, then the token is refused the second it expires', async () => {
    const { t, access, claims } = await setup({ CLOCK_SKEW: '0' });
    const exp = (claims.exp as number) * SECOND;
    t.clock.set(exp - 1);
    expect((await getUser(t, access)).status).toBe(200);
    t.clock.set(exp);
    expectInvalidToken(await getUser(t, access), 'The access token has expired.');
    await t.close();
  });

  test('when the clock is moved back before the token expired, then the same token is accepted again (the clock is read per request)', async () => {
    const { t, access, claims } = await setup({ CLOCK_SKEW: '0' });
    const exp = (claims.exp as number) * SECOND;
    t.clock.set(exp + 10 * SECOND);
    expectInvalidToken(await getUser(t, access), 'The access token has expired.');
    t.clock.set(exp - 10 * SECOND);
    expect((await getUser(t, access)).status).toBe(200);
    await t.close();
  });

  test('when a token carries nbf in the future beyond the skew, then it is refused; within the skew it is accepted', async () => {
    const { t, claims } = await setup({ CLOCK_SKEW: '30' });
    const now = Math.floor(t.clock.now() / SECOND);
    const early = jwt.sign({ ...claims, nbf: now + 60 }, KEY, { algorithm: 'HS256', keyid: KID });
    const soon = jwt.sign({ ...claims, nbf: now + 20 }, KEY, { algorithm: 'HS256', keyid: KID });
    expectInvalidToken(await getUser(t, early));
    expect((await getUser(t, soon)).status).toBe(200);
    await t.close();
  });
});

describe('access token lifetime', () => {
  const YEAR = 365 * 24 * 3600;

  /** Signs `payload` with the server's key exactly as given: no iat added, none checked. */
  const signRaw = (payload: Record<string, unknown>) => {
    const input = `${b64({ alg: 'HS256', typ: 'JWT', kid: KID })}.${b64(payload)}`;
    return `${input}.${createHmac('sha256', KEY).update(input).digest('base64url')}`;
  };

  test('when a token signed with the real key says exp is ten years ahead, then 401 invalid_token', async () => {
    const { t, claims } = await setup();
    const now = Math.floor(t.clock.now() / SECOND);
    const forever = jwt.sign({ ...claims, iat: now, exp: now + 10 * YEAR }, KEY, { algorithm: 'HS256', keyid: KID });
    expectInvalidToken(await getUser(t, forever));
    // Not a matter of time: a year on, well inside its exp, it is still refused.
    t.clock.advance(YEAR * SECOND);
    expectInvalidToken(await getUser(t, forever));
    await t.close();
  });

  test('when exp - iat is ACCESS_TOKEN_TTL plus CLOCK_SKEW, then it is accepted; one second more, then 401 invalid_token', async () => {
    const { t, claims } = await setup({ ACCESS_TOKEN_TTL: '900', CLOCK_SKEW: '30' });
    const now = Math.floor(t.clock.now() / SECOND);
    const longest = jwt.sign({ ...claims, iat: now, exp: now + 930 }, KEY, { algorithm: 'HS256', keyid: KID });
    const tooLong = jwt.sign({ ...claims, iat: now, exp: now + 931 }, KEY, { algorithm: 'HS256', keyid: KID });
    expect((await getUser(t, longest)).status).toBe(200);
    expectInvalidToken(await getUser(t, tooLong));
    await t.close();
  });

  test.each([
    ['no iat', (c: jwt.JwtPayload) => without(c, 'iat')],
    ['a string iat', (c: jwt.JwtPayload) => ({ ...c, iat: String(c.iat) })],
    ['a null iat', (c: jwt.JwtPayload) => ({ ...c, iat: null })],
  ])('when a token signed with the real key has %s, then 401 invalid_token', async (_name, change) => {
    const { t, claims } = await setup();
    // The control: the same claims, hand-signed, are accepted.
    expect((await getUser(t, signRaw({ ...claims, jti: 'control' }))).status).toBe(200);
    expectInvalidToken(await getUser(t, signRaw(change(claims))));
    await t.close();
  });

  test('when iat is in the future beyond CLOCK_SKEW, then it is refused until the clock catches up; within the skew it is accepted', async () => {
    const { t, claims } = await setup({ ACCESS_TOKEN_TTL: '900', CLOCK_SKEW: '30' });
    const now = Math.floor(t.clock.now() / SECOND);
    const early = jwt.sign({ ...claims, iat: now + 60, exp: now + 960 }, KEY, { algorithm: 'HS256', keyid: KID });
    const soon = jwt.sign({ ...claims, iat: now + 20, exp: now + 920 }, KEY, { algorithm: 'HS256', keyid: KID });
    expectInvalidToken(await getUser(t, early));
    expect((await getUser(t, soon)).status).toBe(200);
    // The clock decides this refusal, so it is not remembered: 30 s on, the same text is accepted.
    t.clock.advance(30 * SECOND);
    expect((await getUser(t, early)).status).toBe(200);
    await t.close();
  });
});
