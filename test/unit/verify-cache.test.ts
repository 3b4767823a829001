import jwt from 'jsonwebtoken';
import type { Context } from 'koa';
import { fixedClock } from '../../src/clock';
import { requireToken } from '../../src/http/require-token';
import { createRevocationList } from '../../src/services/revocations';
import { staticHs256Keyring } from '../../src/services/signing-keys';
import { createTokens, type Tokens } from '../../src/services/tokens';
import type { Store } from '../../src/store/store';

const SECRET = 'unit-test-secret-that-is-at-least-32-bytes';
/** The kid createTokens gives the key of `secret`. */
const KID = staticHs256Keyring(SECRET).signer().kid;
const SECOND = 1_000;
const TTL = 900;

/** What the request path does with a token: the cache, else jsonwebtoken.verify as koa-jwt calls it, then acceptVerified. */
function verifyAccess(tokens: Tokens, token: string) {
  return (
    tokens.cachedAccess(token) ??
    tokens.acceptVerified(token, jwt.verify(token, tokens.keyFor(jwt.decode(token, { complete: true })?.header ?? { alg: 'none' }), tokens.verifyOptions()))
  );
}

/** Tokens, a revocation list and the middleware over one fixed clock. */
function setup(opts: { clockSkew?: number; cacheSize?: number } = {}) {
  const clock = fixedClock();
  const settings = { secret: SECRET, issuer: 'iss', audience: 'aud', accessTokenTtl: TTL, clockSkew: opts.clockSkew ?? 30 };
  const tokens = createTokens({ ...settings, ...(opts.cacheSize === undefined ? {} : { verifyCacheSize: opts.cacheSize }) }, clock);
  // Without the cache: what verification alone decides, to compare with.
  const uncached = createTokens({ ...settings, verifyCacheSize: 0 }, clock);
  // has() and add() never reach the store; only sync() does, and no test here calls it.
  const revocations = createRevocationList({ store: {} as Partial<Store> as Store, clock, retainMs: (TTL + 30) * SECOND });
  const middleware = requireToken({ tokens, revocations });
  const sign = (sessionId = 's1') => tokens.signAccess({ id: 'u1', name: 'alice', role: 'user' }, sessionId, clock.now() + 86_400 * SECOND).token;
  let reached = false;
  /** Runs the middleware as the router does: resolves with what it set and whether it went on. */
  const request = async (authorization: string | undefined) => {
    const state: Record<string, unknown> = {};
    // What the middleware and koa-jwt read of a Koa context.
    const header = authorization === undefined ? {} : { authorization };
    const ctx = {
      get: (name: string) => (name.toLowerCase() === 'authorization' ? (authorization ?? '') : ''),
      header,
      headers: header,
      state,
    } as unknown as Context;
    reached = false;
    await middleware(ctx, async () => {
      reached = true;
    });
    return { auth: state['auth'], reached };
  };
  return { clock, tokens, uncached, revocations, sign, request, reachedNext: () => reached };
}

/** The token with character `i` replaced by another one. */
function changeAt(token: string, i: number): string {
  const c = token[i] === 'A' ? 'B' : 'A';
  return `${token.slice(0, i)}${c}${token.slice(i + 1)}`;
}

describe('the cache of verified access tokens', () => {
  test('when a token is verified twice, then the second answer is the first, frozen (and without the cache it is a new object: the probe below works)', () => {
    const { tokens, uncached, sign } = setup();
    const token = sign();
    const first = verifyAccess(tokens, token);
    expect(verifyAccess(tokens, token)).toBe(first);
    expect(Object.isFrozen(first)).toBe(true);
    expect(first).toMatchObject({ sub: 'u1', name: 'alice', role: 'user', sid: 's1' });
    const a = verifyAccess(uncached, token);
    const b = verifyAccess(uncached, token);
    expect([a === b, a]).toEqual([false, first]);
  });

  test('when any one character of a cached token is changed, then the changed token is refused, as verification alone refuses it', () => {
    const { tokens, uncached, sign } = setup();
    const token = sign();
    const cached = verifyAccess(tokens, token);
    let refused = 0;
    for (let i = 0; i < token.length; i += 1) {
      const changed = changeAt(token, i);
      // Some changes make a payload that is not JSON, which jsonwebtoken lets out as a SyntaxError.
      expect(() => verifyAccess(uncached, changed)).toThrow();
      expect(() => verifyAccess(tokens, changed)).toThrow();
      refused += 1;
    }
    expect(refused).toBe(token.length);
    // The last character of a 32-byte signature carries 2 unused bits: this change decodes to the
    // same bytes and is still another text, so it is verified, and refused.
    const signature = token.slice(token.lastIndexOf('.') + 1);
    const last = signature.at(-1) as string;
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const twin = `${token.slice(0, -1)}${alphabet[alphabet.indexOf(last) ^ 1] as string}`;
    expect(Buffer.from(twin.slice(twin.lastIndexOf('.') + 1), 'base64url')).toEqual(Buffer.from(signature, 'base64url'));
    expect(() => verifyAccess(tokens, twin)).toThrow('invalid signature');
    // The original is still served from the cache: the changed texts never matched its entry.
    expect(verifyAccess(tokens, token)).toBe(cached);
  });

  test('when a cached token reaches exp, then it is verified afresh (accepted within the skew) and refused from exp + CLOCK_SKEW on', async () => {
    const { clock, tokens, sign, request } = setup({ clockSkew: 30 });
    const token = sign();
    const exp = verifyAccess(tokens, token).exp * SECOND;
    clock.set(exp - 1);
    const cached = verifyAccess(tokens, token);
    expect(verifyAccess(tokens, token)).toBe(cached);
    clock.set(exp);
    const fresh = verifyAccess(tokens, token);
    expect([fresh === cached, fresh]).toEqual([false, cached]);
    clock.set(exp + 29 * SECOND);
    expect((await request(`Bearer ${token}`)).reached).toBe(true);
    clock.set(exp + 30 * SECOND);
    expect(() => verifyAccess(tokens, token)).toThrow(jwt.TokenExpiredError);
    await expect(request(`Bearer ${token}`)).rejects.toMatchObject({ code: 'invalid_token', message: 'The access token has expired.' });
  });

  test('when CLOCK_SKEW is 0 and a cached token reaches exp, then it is refused at once', async () => {
    const { clock, tokens, sign, request } = setup({ clockSkew: 0 });
    const token = sign();
    const exp = verifyAccess(tokens, token).exp * SECOND;
    clock.set(exp - 1);
    expect((await request(`Bearer ${token}`)).reached).toBe(true);
    clock.set(exp);
    await expect(request(`Bearer ${token}`)).rejects.toMatchObject({ code: 'invalid_token', message: 'The access token has expired.' });
  });

  test('when the session of a cached token is revoked, then the next request is refused, though the cache still holds the token', async () => {
    const { tokens, revocations, clock, sign, request } = setup();
    const token = sign('s1');
    const first = await request(`Bearer ${token}`);
    expect(first.reached).toBe(true);
    expect(first.auth).toBe(verifyAccess(tokens, token));
    revocations.add('s1', clock.now());
    await expect(request(`Bearer ${token}`)).rejects.toMatchObject({ code: 'invalid_token', message: 'The access token has been revoked.' });
    expect(verifyAccess(tokens, token)).toBe(first.auth);
    // Another session's token is untouched.
    expect((await request(`Bearer ${sign('s2')}`)).reached).toBe(true);
  });

  test('when a token carries nbf, then it is never cached (verification alone decides nbf)', () => {
    const { tokens, clock, sign } = setup();
    const claims = jwt.decode(sign()) as jwt.JwtPayload;
    const token = jwt.sign({ ...claims, nbf: Math.floor(clock.now() / SECOND) }, SECRET, { algorithm: 'HS256', keyid: KID });
    const first = verifyAccess(tokens, token);
    expect(verifyAccess(tokens, token)).not.toBe(first);
  });

  test('when more tokens are verified than the cache holds, then the least recently used one is dropped', () => {
    const { tokens, sign } = setup({ cacheSize: 2 });
    const [a, b, c] = [sign('a'), sign('b'), sign('c')];
    const ca = verifyAccess(tokens, a);
    const cb = verifyAccess(tokens, b);
    expect(verifyAccess(tokens, a)).toBe(ca); // a is now the most recently used
    const cc = verifyAccess(tokens, c); // drops b
    expect(verifyAccess(tokens, a)).toBe(ca);
    expect(verifyAccess(tokens, c)).toBe(cc);
    expect(verifyAccess(tokens, b)).not.toBe(cb);
  });
});

describe('requireToken', () => {
  const missing = 'An access token is required (Authorization: Bearer <token>).';
  const invalid = 'The access token is invalid.';
  test.each([
    // TOKEN stands for a valid token.
    ['no Authorization header', 'missing_token', missing, undefined],
    ['an empty Authorization header', 'missing_token', missing, ''],
    ['the scheme alone', 'invalid_token', invalid, 'Bearer'],
    ['another scheme', 'invalid_token', invalid, 'Basic YWRtaW46YWRtaW4='],
    ['two spaces after the scheme', 'invalid_token', invalid, 'Bearer  TOKEN'],
    ['a token and more', 'invalid_token', invalid, 'Bearer TOKEN extra'],
    ['not a JWT', 'invalid_token', invalid, 'Bearer not-a-token'],
  ])('when the request has %s, then it is refused with %s and goes no further', async (_name, code, message, header) => {
    const { sign, request, reachedNext } = setup();
    await expect(request(header?.replace('TOKEN', sign()))).rejects.toMatchObject({ code, message, status: 401 });
    expect(reachedNext()).toBe(false);
  });

  test('when the scheme is written in lower case, then the token is accepted (the scheme is case-insensitive)', async () => {
    const { sign, request } = setup();
    const res = await request(`bearer ${sign()}`);
    expect([res.reached, (res.auth as { sub: string }).sub]).toEqual([true, 'u1']);
  });
});
