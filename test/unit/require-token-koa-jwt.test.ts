import jwt from 'jsonwebtoken';
import type { Context } from 'koa';
import { fixedClock } from '../../src/clock';
import { REFUSED_CACHE_SIZE, REFUSED_MAX_CHARS, requireToken } from '../../src/http/require-token';
import { createRevocationList } from '../../src/services/revocations';
import { staticHs256Keyring } from '../../src/services/signing-keys';
import { createTokens } from '../../src/services/tokens';
import type { Store } from '../../src/store/store';

// koa-jwt itself, watched: every call of the middleware it builds is counted, the options it was
// built with are kept, and `mockSkipVerification` makes it call next() without verifying (a
// guard that lets everything through), to show requireToken does not trust such a pass.
const mockKoaJwt = { calls: 0, options: [] as Record<string, unknown>[], skipVerification: false };
jest.mock('koa-jwt', () => {
  const actual = jest.requireActual('koa-jwt');
  return (options: Record<string, unknown>) => {
    mockKoaJwt.options.push(options);
    const middleware = actual(options);
    return (ctx: unknown, next: () => Promise<unknown>) => {
      mockKoaJwt.calls += 1;
      return mockKoaJwt.skipVerification ? next() : middleware(ctx, next);
    };
  };
});

const SECRET = 'unit-test-secret-that-is-at-least-32-bytes';
/** The kid createTokens gives the key of `secret`. */
const KID = staticHs256Keyring(SECRET).signer().kid;
const SECOND = 1_000;

function setup(cacheSize?: number) {
  mockKoaJwt.calls = 0;
  mockKoaJwt.options = [];
  mockKoaJwt.skipVerification = false;
  const clock = fixedClock();
  const tokens = createTokens(
    { secret: SECRET, issuer: 'iss', audience: 'aud', accessTokenTtl: 900, clockSkew: 30, ...(cacheSize === undefined ? {} : { verifyCacheSize: cacheSize }) },
    clock,
  );
  const revocations = createRevocationList({ store: {} as Partial<Store> as Store, clock, retainMs: 930 * SECOND });
  const middleware = requireToken({ tokens, revocations });
  const sign = (sessionId = 's1') => tokens.signAccess({ id: 'u1', name: 'alice', role: 'user' }, sessionId, clock.now() + 86_400 * SECOND).token;
  const request = async (token: string) => {
    const authorization = `Bearer ${token}`;
    const state: Record<string, unknown> = {};
    const ctx = { get: () => authorization, header: { authorization }, headers: { authorization }, state } as unknown as Context;
    let reached = false;
    await middleware(ctx, async () => {
      reached = true;
    });
    return { reached, auth: state['auth'] };
  };
  return { clock, tokens, revocations, sign, request };
}

describe('requireToken is koa-jwt', () => {
  test('when it is built, then koa-jwt gets a key look-up by kid, HS256 alone, the issuer, the audience and the clock skew', async () => {
    const { tokens } = setup();
    expect(mockKoaJwt.options).toHaveLength(1);
    const options = mockKoaJwt.options[0] as Record<string, unknown>;
    expect(options).toMatchObject({ algorithms: ['HS256'], issuer: 'iss', audience: 'aud', clockTolerance: 30, complete: true });
    const signer = tokens.keyring.signer();
    expect(await (options['secret'] as (h: object) => Promise<unknown>)({ alg: 'HS256', kid: signer.kid })).toBe(signer.key);
    expect(typeof options['isRevoked']).toBe('function');
  });

  test('when a token is seen for the first time, then koa-jwt verifies it; the same text again is answered from its earlier verdict', async () => {
    const { request, sign } = setup();
    const token = sign();
    const first = await request(token);
    expect([first.reached, mockKoaJwt.calls]).toEqual([true, 1]);
    expect(first.auth).toMatchObject({ sub: 'u1', name: 'alice', sid: 's1' });
    expect((await request(token)).reached).toBe(true);
    expect(mockKoaJwt.calls).toBe(1);
    // Another token is another text: koa-jwt again.
    expect((await request(sign('s2'))).reached).toBe(true);
    expect(mockKoaJwt.calls).toBe(2);
  });

  test('when the cache is off, then koa-jwt verifies every request', async () => {
    const { request, sign } = setup(0);
    const token = sign();
    for (let i = 0; i < 3; i += 1) expect((await request(token)).reached).toBe(true);
    expect(mockKoaJwt.calls).toBe(3);
  });

  const forgeries: [string, (claims: jwt.JwtPayload) => string][] = [
    ['signed with another secret', (claims) => jwt.sign(claims, 'another-secret-that-is-at-least-32-bytes!', { algorithm: 'HS256' })],
    ['signed with HS512', (claims) => jwt.sign(claims, SECRET, { algorithm: 'HS512', keyid: KID })],
    ['of another issuer', (claims) => jwt.sign({ ...claims, iss: 'other' }, SECRET, { algorithm: 'HS256', keyid: KID })],
    ['for another audience', (claims) => jwt.sign({ ...claims, aud: 'other' }, SECRET, { algorithm: 'HS256', keyid: KID })],
    ['without exp', ({ exp: _exp, ...claims }) => jwt.sign(claims, SECRET, { algorithm: 'HS256', keyid: KID })],
    ['with a crit header', (claims) => jwt.sign(claims, SECRET, { algorithm: 'HS256', keyid: KID, header: { alg: 'HS256', kid: KID, crit: ['b64'] } })],
    ['not a JWT at all', () => 'not-a-token'],
  ];
  test.each(forgeries)('when a token is %s, then koa-jwt refuses it, and the same text again is refused without asking koa-jwt', async (_name, forge) => {
    const { request, sign } = setup();
    const forged = forge(jwt.decode(sign()) as jwt.JwtPayload);
    for (let i = 0; i < 3; i += 1) {
      await expect(request(forged)).rejects.toMatchObject({ status: 401, code: 'invalid_token', message: 'The access token is invalid.' });
    }
    expect(mockKoaJwt.calls).toBe(1);
  });

  test('when a token is expired, then koa-jwt refuses it every time (the clock decides expiry, so that refusal is not remembered)', async () => {
    const { request, sign } = setup();
    const claims = jwt.decode(sign()) as jwt.JwtPayload;
    const expired = jwt.sign({ ...claims, exp: (claims.iat as number) - 60 }, SECRET, { algorithm: 'HS256', keyid: KID });
    for (let i = 0; i < 2; i += 1) {
      await expect(request(expired)).rejects.toMatchObject({ status: 401, code: 'invalid_token', message: 'The access token has expired.' });
    }
    expect(mockKoaJwt.calls).toBe(2);
  });

  test('when a token is not yet valid (nbf), then it is refused until nbf and accepted from then on', async () => {
    const { request, sign, clock } = setup();
    const claims = jwt.decode(sign()) as jwt.JwtPayload;
    const early = jwt.sign({ ...claims, nbf: (claims.iat as number) + 120 }, SECRET, { algorithm: 'HS256', keyid: KID });
    await expect(request(early)).rejects.toMatchObject({ status: 401, code: 'invalid_token' });
    clock.set(((claims.iat as number) + 120) * SECOND);
    expect((await request(early)).reached).toBe(true);
    expect(mockKoaJwt.calls).toBe(2);
  });

  test('when a refused text is longer than REFUSED_MAX_CHARS, then it is not remembered (the memory stays bounded), and still refused', async () => {
    const { request } = setup();
    const long = 'x'.repeat(REFUSED_MAX_CHARS + 1);
    for (let i = 0; i < 2; i += 1) await expect(request(long)).rejects.toMatchObject({ code: 'invalid_token' });
    expect(mockKoaJwt.calls).toBe(2);
    const atLimit = 'y'.repeat(REFUSED_MAX_CHARS);
    for (let i = 0; i < 2; i += 1) await expect(request(atLimit)).rejects.toMatchObject({ code: 'invalid_token' });
    expect(mockKoaJwt.calls).toBe(3);
  });

  test('when more texts are refused than it remembers, then the oldest is verified again (and still refused)', async () => {
    const { request } = setup();
    const first = 'not-a-token-0';
    await expect(request(first)).rejects.toMatchObject({ code: 'invalid_token' });
    for (let i = 1; i <= REFUSED_CACHE_SIZE; i += 1) await expect(request(`not-a-token-${i}`)).rejects.toMatchObject({ code: 'invalid_token' });
    expect(mockKoaJwt.calls).toBe(REFUSED_CACHE_SIZE + 1);
    await expect(request(first)).rejects.toMatchObject({ code: 'invalid_token' });
    expect(mockKoaJwt.calls).toBe(REFUSED_CACHE_SIZE + 2);
  });

  test('when the session is revoked before its token was ever seen, then koa-jwt isRevoked refuses it', async () => {
    const { request, sign, revocations, clock } = setup();
    const token = sign('gone');
    revocations.add('gone', clock.now());
    await expect(request(token)).rejects.toMatchObject({ status: 401, code: 'invalid_token', message: 'The access token has been revoked.' });
    expect(mockKoaJwt.calls).toBe(1);
  });

  test('when koa-jwt lets a request through without verifying it, then requireToken still refuses it (it fails closed)', async () => {
    const { request, sign } = setup();
    mockKoaJwt.skipVerification = true;
    const res = request(sign());
    await expect(res).rejects.toMatchObject({ status: 401, code: 'invalid_token' });
    expect(mockKoaJwt.calls).toBe(1);
  });
});
