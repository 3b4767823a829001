import { createHmac, createPrivateKey, generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import jwt from 'jsonwebtoken';
import Koa from 'koa';
import request from 'supertest';
import { fixedClock } from '../../src/clock';
import { jwtVerifier, type VerifierOptions } from '../../src/verifier';
import { expectProblem } from '../support/expect-problem';
import { type ResourceServer, startResourceServer } from '../support/resource-server';

/**
 * jwtVerifier as another service uses it: a JWKS served by a local Koa app (keys made here with
 * node:crypto, fetches counted), a resource server with the verifier in front of GET /protected,
 * tokens signed in ES256 by jsonwebtoken and in EdDSA by `signEdDSA` below (jsonwebtoken 9
 * cannot sign EdDSA). The verifier's clock is a fixed one that tests move; the JWKS and the
 * resource server are real, on 127.0.0.1.
 */

const ISSUER = 'https://auth.example.test';
const AUDIENCE = 'https://api.example.test';
const START = Date.UTC(2026, 0, 1);
const COOLDOWN = 30_000;
const MAX_AGE = 10 * 60_000;

// ---- keys and tokens -------------------------------------------------------------------------

interface TestKey {
  kid: string;
  alg: 'ES256' | 'EdDSA';
  privateKey: KeyObject;
  publicKey: KeyObject;
}

function makeKey(kid: string, alg: 'ES256' | 'EdDSA'): TestKey {
  const pair = alg === 'ES256' ? generateKeyPairSync('ec', { namedCurve: 'P-256' }) : generateKeyPairSync('ed25519');
  return { kid, alg, ...pair };
}

/** The JWK the auth server publishes for a key: kty/crv/x(/y), kid, alg, use. */
function publicJwk(key: TestKey): Record<string, unknown> {
  return { ...key.publicKey.export({ format: 'jwk' }), kid: key.kid, alg: key.alg, use: 'sig' };
}

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

/** A compact JWS over any header, Ed25519-signed (RFC 8037 §3.1: the signature over the ASCII signing input). */
function signEdDSA(header: Record<string, unknown>, payload: Record<string, unknown>, privateKey: KeyObject): string {
  const input = `${b64(header)}.${b64(payload)}`;
  return `${input}.${sign(null, Buffer.from(input, 'ascii'), privateKey).toString('base64url')}`;
}

function claims(overrides: Record<string, unknown> = {}, now = START): Record<string, unknown> {
  const iat = Math.floor(now / 1000);
  const all = { sub: 'user-1', name: 'alice', role: 'user', sid: 'session-1', iss: ISSUER, aud: AUDIENCE, iat, exp: iat + 900, jti: 'j1', ...overrides };
  // An override of undefined leaves the claim out.
  return Object.fromEntries(Object.entries(all).filter(([, v]) => v !== undefined));
}

/** A token of `key` as the auth server signs it, with kid. */
function tokenOf(key: TestKey, overrides: Record<string, unknown> = {}, now = START): string {
  if (key.alg === 'ES256') return jwt.sign(claims(overrides, now), key.privateKey, { algorithm: 'ES256', keyid: key.kid });
  return signEdDSA({ alg: 'EdDSA', typ: 'JWT', kid: key.kid }, claims(overrides, now), key.privateKey);
}

// ---- the JWKS server -------------------------------------------------------------------------

interface JwksServer {
  uri: string;
  /** GETs of the JWKS so far. */
  fetches: number;
  keys: Record<string, unknown>[];
  /** up: 200 with the keys; error: 500; garbage: 200 with HTML; hang: answers after 3 s. */
  mode: 'up' | 'error' | 'garbage' | 'hang';
  close(): Promise<void>;
}

async function startJwks(keys: Record<string, unknown>[]): Promise<JwksServer> {
  const app = new Koa();
  const state = { fetches: 0, keys, mode: 'up' } as JwksServer;
  app.use(async (ctx) => {
    if (ctx.path !== '/.well-known/jwks.json') return;
    state.fetches += 1;
    if (state.mode === 'error') ctx.status = 500;
    else if (state.mode === 'garbage') ctx.body = '<html>maintenance</html>';
    else if (state.mode === 'hang') await new Promise((resolve) => setTimeout(resolve, 3_000).unref());
    else ctx.body = { keys: state.keys };
  });
  const server = app.listen(0, '127.0.0.1');
  await new Promise<void>((resolve) => server.once('listening', resolve));
  state.uri = `http://127.0.0.1:${(server.address() as AddressInfo).port}/.well-known/jwks.json`;
  state.close = () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  return state;
}

// ---- helpers ---------------------------------------------------------------------------------

function get(server: ResourceServer, token?: string, path = '/protected') {
  const req = request(server.url).get(path);
  return token === undefined ? req : req.set('Authorization', `Bearer ${token}`);
}

/** A 401 problem with the invalid_token challenge (RFC 6750 §3). */
async function expectInvalid(server: ResourceServer, token: string, detail = 'The access token is invalid.') {
  const res = await get(server, token);
  expectProblem(res, 401, 'invalid_token');
  expect(res.body).toEqual({ type: 'urn:problem-type:invalid_token', title: 'Unauthorized', status: 401, detail, code: 'invalid_token' });
  expect(res.headers['www-authenticate']).toBe(`Bearer error="invalid_token", error_description="${detail}"`);
  return res;
}

async function expectAccepted(server: ResourceServer, token: string) {
  const res = await get(server, token);
  expect(res.status).toBe(200);
  expect(res.body).toEqual({ claims: jwt.decode(token) });
  return res;
}

const ec1 = makeKey('ec-1', 'ES256');
const ed1 = makeKey('ed-1', 'EdDSA');
const ec2 = makeKey('ec-2', 'ES256');
const attackerEc = makeKey('attacker-ec', 'ES256');
const attackerEd = makeKey('attacker-ed', 'EdDSA');

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const close of cleanups.splice(0).reverse()) await close();
});

/** A JWKS publishing `keys` and a resource server in front of it, closed after the test. */
async function setup(keys: TestKey[], options: Partial<VerifierOptions> = {}) {
  const jwks = await startJwks(keys.map(publicJwk));
  cleanups.push(() => jwks.close());
  const clock = fixedClock(START);
  const server = await startResourceServer(jwks.uri, ISSUER, options.audience ?? AUDIENCE, { clock, cooldown: COOLDOWN, cacheMaxAge: MAX_AGE, ...options });
  cleanups.push(() => server.close());
  return { jwks, clock, server };
}

// ---- tests -----------------------------------------------------------------------------------

test('when the test signs EdDSA, then it reproduces RFC 8037 A.4 byte for byte', () => {
  // The verifier accepts what signEdDSA makes; this shows signEdDSA is the standard's EdDSA.
  const rfcKey = createPrivateKey({
    key: { kty: 'OKP', crv: 'Ed25519', d: 'nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A', x: '11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo' },
    format: 'jwk',
  });
  const input = 'eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc';
  expect(Buffer.from(input.split('.')[0] as string, 'base64url').toString()).toBe('{"alg":"EdDSA"}');
  expect(sign(null, Buffer.from(input, 'ascii'), rfcKey).toString('base64url')).toBe(
    'hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg',
  );
});

describe('accepted tokens', () => {
  test('when an ES256 token (jsonwebtoken) and an EdDSA token with kid arrive, then both get 200 and their claims', async () => {
    const { server, jwks } = await setup([ec1, ed1]);
    await expectAccepted(server, tokenOf(ec1));
    await expectAccepted(server, tokenOf(ed1));
    expect(jwks.fetches).toBe(1); // one fetch, both keys from it
  });

  test('when the audience option is a list, then a token for any one of them is accepted and one for another is not', async () => {
    const { server } = await setup([ec1], { audience: ['https://other.example.test', AUDIENCE] });
    await expectAccepted(server, tokenOf(ec1));
    await expectAccepted(server, tokenOf(ec1, { aud: ['https://x.example.test', 'https://other.example.test'] }));
    await expectInvalid(server, tokenOf(ec1, { aud: 'https://x.example.test' }));
  });

  test('when key is set, then the claims land in ctx.state[key]', async () => {
    const { server } = await setup([ec1], { key: 'auth' });
    const res = await get(server, tokenOf(ec1));
    expect(res.status).toBe(200);
    expect(res.body.claims).toMatchObject({ sub: 'user-1', iss: ISSUER });
  });

  test('when a token expired within clockTolerance, then it is accepted, and past it, refused as expired', async () => {
    const { server } = await setup([ec1], { clockTolerance: 10 });
    const now = Math.floor(START / 1000);
    await expectAccepted(server, tokenOf(ec1, { iat: now - 905, exp: now - 5 }));
    await expectInvalid(server, tokenOf(ec1, { iat: now - 910, exp: now - 10 }), 'The access token has expired.');
  });
});

describe('ES256 through koa-jwt, EdDSA over node:crypto', () => {
  test('when an ES256 token arrives, then koa-jwt has jsonwebtoken.verify check it with the JWKS key and the pinned options on the verifier clock; an EdDSA token never reaches it', async () => {
    const verifySpy = jest.spyOn(jwt, 'verify');
    try {
      const { server, clock } = await setup([ec1, ed1], { clockTolerance: 5 });
      clock.advance(60_000);
      const token = tokenOf(ec1, {}, START + 60_000);
      await expectAccepted(server, token);
      expect(verifySpy).toHaveBeenCalledTimes(1);
      const [given, key, options] = verifySpy.mock.calls[0] as unknown as [string, KeyObject, Record<string, unknown>];
      expect(given).toBe(token);
      expect(key.equals(ec1.publicKey)).toBe(true);
      // koa-jwt hands jsonwebtoken its own options: passthrough and getToken are koa-jwt's.
      expect(options).toMatchObject({
        algorithms: ['ES256'],
        issuer: ISSUER,
        audience: [AUDIENCE],
        clockTolerance: 5,
        complete: true,
        passthrough: true,
        clockTimestamp: Math.floor((START + 60_000) / 1000),
      });
      expect(typeof options['getToken']).toBe('function');

      verifySpy.mockClear();
      await expectAccepted(server, tokenOf(ed1, {}, START + 60_000));
      await expectInvalid(server, jwt.sign(claims(), attackerEc.privateKey, { algorithm: 'ES256', keyid: 'ec-1' }));
      expect(verifySpy).toHaveBeenCalledTimes(1); // the ES256 forgery, not the EdDSA token
    } finally {
      verifySpy.mockRestore();
    }
  });

  test("when the app puts a secret in ctx.state (koa-jwt's override of its secret option), then the key is still the JWKS's", async () => {
    const jwks = await startJwks([publicJwk(ec1)]);
    cleanups.push(() => jwks.close());
    const app = new Koa();
    app.use(async (ctx, next) => {
      ctx.state['secret'] = attackerEc.publicKey;
      await next();
    });
    app.use(jwtVerifier({ jwksUri: jwks.uri, issuer: ISSUER, audience: AUDIENCE, clock: fixedClock(START) }));
    app.use((ctx) => {
      ctx.body = { claims: ctx.state['user'] as unknown };
    });
    const server = app.listen(0, '127.0.0.1');
    await new Promise<void>((resolve) => server.once('listening', resolve));
    cleanups.push(
      () =>
        new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        }),
    );
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const ok = await request(url)
      .get('/')
      .set('Authorization', `Bearer ${tokenOf(ec1)}`);
    expect(ok.status).toBe(200);
    expect(ok.body).toEqual({ claims: jwt.decode(tokenOf(ec1)) });
    const forged = await request(url)
      .get('/')
      .set('Authorization', `Bearer ${jwt.sign(claims(), attackerEc.privateKey, { algorithm: 'ES256', keyid: 'ec-1' })}`);
    expectProblem(forged, 401, 'invalid_token');
  });
});

describe('refused tokens: 401 application/problem+json with Bearer error="invalid_token"', () => {
  const now = Math.floor(START / 1000);
  const hs256 = (secret: Buffer | string, kid: string) => {
    const input = `${b64({ alg: 'HS256', typ: 'JWT', kid })}.${b64(claims())}`;
    return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
  };
  const ecJwk = ec1.publicKey.export({ format: 'jwk' });
  const es256WithHeader = (header: Record<string, unknown>, key: TestKey) =>
    jwt.sign(claims(), key.privateKey, { algorithm: 'ES256', header: { alg: 'ES256', ...header } });
  /** A JWS over `header` whose signature is made by `how`, whatever the header says. */
  const signAs = (how: 'ES256' | 'EdDSA', header: Record<string, unknown>, privateKey: KeyObject) => {
    const input = `${b64(header)}.${b64(claims())}`;
    const data = Buffer.from(input, 'ascii');
    const signature = how === 'ES256' ? sign('sha256', data, { key: privateKey, dsaEncoding: 'ieee-p1363' }) : sign(null, data, privateKey);
    return `${input}.${signature.toString('base64url')}`;
  };
  const [goodHeader, goodPayload, goodSignature] = tokenOf(ec1).split('.') as [string, string, string];

  const cases: [string, { given: () => string; detail?: string }][] = [
    ['wrong issuer', { given: () => tokenOf(ec1, { iss: 'https://evil.example.test' }) }],
    ['no issuer', { given: () => tokenOf(ec1, { iss: undefined }) }],
    ['wrong audience', { given: () => tokenOf(ed1, { aud: 'https://other.example.test' }) }],
    ['no audience', { given: () => tokenOf(ed1, { aud: undefined }) }],
    ['expired', { given: () => tokenOf(ec1, { iat: now - 1000, exp: now - 100 }), detail: 'The access token has expired.' }],
    ['expired this very second', { given: () => tokenOf(ed1, { iat: now - 900, exp: now }), detail: 'The access token has expired.' }],
    ['no exp', { given: () => tokenOf(ec1, { exp: undefined }) }],
    ['nbf ahead', { given: () => tokenOf(ec1, { nbf: now + 60 }) }],
    ['iat ahead', { given: () => tokenOf(ec1, { iat: now + 60, exp: now + 960 }) }],
    ['bad ES256 signature (another key, the published kid)', { given: () => jwt.sign(claims(), attackerEc.privateKey, { algorithm: 'ES256', keyid: 'ec-1' }) }],
    ['bad EdDSA signature (another key, the published kid)', { given: () => signEdDSA({ alg: 'EdDSA', kid: 'ed-1' }, claims(), attackerEd.privateKey) }],
    ['payload changed after signing', { given: () => `${goodHeader}.${b64(claims({ role: 'admin' }))}.${goodSignature}` }],
    ['signature of another token', { given: () => `${goodHeader}.${goodPayload}.${tokenOf(ec1, { sub: 'user-2' }).split('.')[2]}` }],
    ['signature in non-canonical base64url', { given: () => `${goodHeader}.${goodPayload}.${goodSignature}=` }],
    ['alg none, no signature', { given: () => `${b64({ alg: 'none', kid: 'ec-1' })}.${b64(claims())}.` }],
    ['alg none, with a signature', { given: () => `${b64({ alg: 'none', kid: 'ec-1' })}.${b64(claims())}.${goodSignature}` }],
    ['HS256 with the public key PEM as secret', { given: () => hs256(ec1.publicKey.export({ format: 'pem', type: 'spki' }), 'ec-1') }],
    ['HS256 with the public key DER as secret', { given: () => hs256(ec1.publicKey.export({ format: 'der', type: 'spki' }), 'ec-1') }],
    ['HS256 with the JWK x as secret', { given: () => hs256(Buffer.from(ecJwk.x as string, 'base64url'), 'ec-1') }],
    ['HS256 with the JWK text as secret', { given: () => hs256(JSON.stringify(publicJwk(ec1)), 'ec-1') }],
    ['EdDSA header naming the ES256 key', { given: () => signEdDSA({ alg: 'EdDSA', kid: 'ec-1' }, claims(), ed1.privateKey) }],
    ['ES256 header naming the EdDSA key', { given: () => jwt.sign(claims(), ec1.privateKey, { algorithm: 'ES256', keyid: 'ed-1' }) }],
    // Signed correctly by the key the kid names, under the other algorithm's name: only the
    // key's own alg decides, so these fail even though the signature is the named key's.
    ['alg EdDSA over an ES256 signature by the named ES256 key', { given: () => signAs('ES256', { alg: 'EdDSA', kid: 'ec-1' }, ec1.privateKey) }],
    ['alg ES256 over an EdDSA signature by the named EdDSA key', { given: () => signAs('EdDSA', { alg: 'ES256', kid: 'ed-1' }, ed1.privateKey) }],
    ['ES384', { given: () => jwt.sign(claims(), generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey, { algorithm: 'ES384', keyid: 'ec-1' }) }],
    ['embedded jwk header, the published kid', { given: () => es256WithHeader({ kid: 'ec-1', jwk: publicJwk(attackerEc) }, attackerEc) }],
    ['embedded jwk header, its own kid', { given: () => es256WithHeader({ kid: 'attacker-ec', jwk: publicJwk(attackerEc) }, attackerEc) }],
    ['embedded jwk header, signed by the real key', { given: () => es256WithHeader({ kid: 'ec-1', jwk: publicJwk(attackerEc) }, ec1) }],
    ['x5c header', { given: () => es256WithHeader({ kid: 'ec-1', x5c: ['MIIB'] }, ec1) }],
    ['crit header', { given: () => es256WithHeader({ kid: 'ec-1', crit: ['exp'] }, ec1) }],
    ['two parts', { given: () => `${goodHeader}.${goodPayload}` }],
    ['four parts', { given: () => `${goodHeader}.${goodPayload}.${goodSignature}.x` }],
    ['header not JSON', { given: () => `${Buffer.from('{"alg":').toString('base64url')}.${goodPayload}.${goodSignature}` }],
    ['payload an array', { given: () => `${goodHeader}.${b64([1])}.${goodSignature}` }],
    ['over 8 KiB', { given: () => tokenOf(ec1, { pad: 'x'.repeat(9000) }) }],
  ];

  let env: Awaited<ReturnType<typeof setup>>;
  beforeEach(async () => {
    env = await setup([ec1, ed1]);
    await expectAccepted(env.server, tokenOf(ec1)); // the JWKS is fetched: the refusals below have their keys
  });

  test.each(cases)('when the token has %s, then 401 invalid_token and no JWKS fetch', async (_name, { given, detail }) => {
    await expectInvalid(env.server, given(), detail);
    expect(env.jwks.fetches).toBe(1);
  });

  test('when a token carries a jku or x5u, then it is refused and the address is never fetched', async () => {
    const attackerJwks = await startJwks([publicJwk(attackerEc)]);
    cleanups.push(() => attackerJwks.close());
    env.clock.advance(COOLDOWN); // a refetch would be allowed, so "no fetch" means "not asked for"
    for (const header of [
      { kid: 'attacker-ec', jku: attackerJwks.uri },
      { kid: 'attacker-ec', x5u: attackerJwks.uri },
      { kid: 'ec-1', jku: attackerJwks.uri },
    ]) {
      await expectInvalid(env.server, es256WithHeader(header, attackerEc));
    }
    expect(attackerJwks.fetches).toBe(0);
    expect(env.jwks.fetches).toBe(1);
  });

  test('when a token has no kid (or an empty or 257-character one), then it is refused without a JWKS fetch, even with one key published and the cooldown over', async () => {
    const single = await setup([ec1]);
    await expectAccepted(single.server, tokenOf(ec1));
    single.clock.advance(COOLDOWN);
    await expectInvalid(single.server, jwt.sign(claims(), ec1.privateKey, { algorithm: 'ES256' }));
    await expectInvalid(single.server, signEdDSA({ alg: 'EdDSA' }, claims(), ed1.privateKey));
    await expectInvalid(single.server, jwt.sign(claims(), ec1.privateKey, { algorithm: 'ES256', keyid: '' }));
    await expectInvalid(single.server, jwt.sign(claims(), ec1.privateKey, { algorithm: 'ES256', keyid: 'k'.repeat(257) }));
    expect(single.jwks.fetches).toBe(1);
  });

  test('when the Authorization header is missing, then 401 missing_token with a bare Bearer challenge (RFC 6750 §3.1)', async () => {
    const res = await get(env.server);
    expectProblem(res, 401, 'missing_token');
    expect(res.headers['www-authenticate']).toBe('Bearer');
  });

  test.each([['Basic dXNlcjpwYXNz'], ['Bearer'], ['Bearer a b'], ['Token x.y.z']])(
    'when the Authorization header is %p, then 401 invalid_token',
    async (header) => {
      const res = await request(env.server.url).get('/protected').set('Authorization', header);
      expectProblem(res, 401, 'invalid_token');
      expect(res.headers['www-authenticate']).toMatch(/^Bearer error="invalid_token"/);
    },
  );

  test('when the scheme is spelled "bearer", then the token is accepted (RFC 6750 §2.1: case-insensitive)', async () => {
    const res = await request(env.server.url)
      .get('/protected')
      .set('Authorization', `bearer ${tokenOf(ed1)}`);
    expect(res.status).toBe(200);
  });

  test('when a handler after the verifier throws, then the answer is a 500, not a 401', async () => {
    const res = await get(env.server, tokenOf(ec1), '/boom');
    expect(res.status).toBe(500);
    expect(res.headers['www-authenticate']).toBeUndefined();
  });
});

describe('algorithms option', () => {
  test('when algorithms is [ES256], then an EdDSA token with a published EdDSA key is refused and ES256 accepted', async () => {
    const { server } = await setup([ec1, ed1], { algorithms: ['ES256'] });
    await expectAccepted(server, tokenOf(ec1));
    await expectInvalid(server, tokenOf(ed1));
  });

  test.each([
    ['HS256', { algorithms: ['HS256'] }],
    ['none', { algorithms: ['none'] }],
    ['RS256 beside ES256', { algorithms: ['ES256', 'RS256'] }],
    ['an empty list', { algorithms: [] }],
    ['an empty audience', { audience: [] }],
    ['no issuer', { issuer: '' }],
    ['a jwksUri that is no URL', { jwksUri: 'jwks.json' }],
    ['a file: jwksUri', { jwksUri: 'file:///jwks.json' }],
    ['a negative cooldown', { cooldown: -1 }],
  ])('when given %s, then jwtVerifier throws a TypeError at once', (_name, bad) => {
    const options = { jwksUri: 'http://127.0.0.1:9/.well-known/jwks.json', issuer: ISSUER, audience: AUDIENCE, ...bad } as unknown as VerifierOptions;
    expect(() => jwtVerifier(options)).toThrow(TypeError);
  });
});

describe('JWKS fetches for unknown kids', () => {
  test('when tokens name unknown kids, then they get 401 and the JWKS is fetched at most once per cooldown', async () => {
    const { server, jwks, clock } = await setup([ec1, ed1]);
    const unknown = (i: number) => jwt.sign(claims(), attackerEc.privateKey, { algorithm: 'ES256', keyid: `unknown-${i}` });
    await expectAccepted(server, tokenOf(ec1));
    expect(jwks.fetches).toBe(1);

    // Within the cooldown of the first fetch: no refetch at all.
    for (let i = 0; i < 10; i += 1) await expectInvalid(server, unknown(i));
    expect(jwks.fetches).toBe(1);

    // Cooldown over: the first unknown kid refetches once; the rest wait for the next period.
    clock.advance(COOLDOWN);
    for (let i = 10; i < 20; i += 1) await expectInvalid(server, unknown(i));
    expect(jwks.fetches).toBe(2);
    clock.advance(COOLDOWN - 1);
    await expectInvalid(server, unknown(20));
    expect(jwks.fetches).toBe(2);
    clock.advance(1);
    await expectInvalid(server, unknown(21));
    expect(jwks.fetches).toBe(3);

    // Twenty at once when a refetch is allowed: they share one.
    clock.advance(COOLDOWN);
    await Promise.all(Array.from({ length: 20 }, (_, i) => expectInvalid(server, unknown(100 + i))));
    expect(jwks.fetches).toBe(4);

    // Published keys were answered from the cache all along.
    await expectAccepted(server, tokenOf(ed1));
    expect(jwks.fetches).toBe(4);
  });

  test('when the cache age passes, then the JWKS is fetched again once for known kids', async () => {
    const { server, jwks, clock } = await setup([ec1]);
    await expectAccepted(server, tokenOf(ec1));
    clock.advance(MAX_AGE - 1);
    await expectAccepted(server, tokenOf(ec1, {}, clock.now()));
    expect(jwks.fetches).toBe(1);
    clock.advance(1);
    await expectAccepted(server, tokenOf(ec1, {}, clock.now()));
    await expectAccepted(server, tokenOf(ec1, {}, clock.now()));
    expect(jwks.fetches).toBe(2);
  });
});

describe('key rotation', () => {
  test("when the JWKS gains a new key, then its tokens are accepted after a refetch, and the old key's while it is published", async () => {
    const { server, jwks, clock } = await setup([ec1]);
    const before = tokenOf(ec1);
    await expectAccepted(server, before);

    // The auth server publishes ec-2 and signs with it.
    jwks.keys = [publicJwk(ec1), publicJwk(ec2)];
    clock.advance(COOLDOWN);
    const rotated = tokenOf(ec2, {}, clock.now());
    await expectAccepted(server, rotated);
    expect(jwks.fetches).toBe(2);
    await expectAccepted(server, before);
    await expectAccepted(server, tokenOf(ec1, {}, clock.now()));

    // ec-1 retired: once the cache age has passed, its tokens stop working; ec-2's go on.
    jwks.keys = [publicJwk(ec2)];
    clock.advance(MAX_AGE);
    await expectInvalid(server, tokenOf(ec1, {}, clock.now()));
    await expectAccepted(server, tokenOf(ec2, {}, clock.now()));
    expect(jwks.fetches).toBe(3);
  });

  test('when a new kid arrives within the cooldown of the last fetch, then it is refused until the cooldown ends (why keys are published before use)', async () => {
    const { server, jwks, clock } = await setup([ec1]);
    await expectAccepted(server, tokenOf(ec1));
    jwks.keys = [publicJwk(ec1), publicJwk(ed1)];
    clock.advance(COOLDOWN - 1_000);
    await expectInvalid(server, tokenOf(ed1, {}, clock.now()));
    expect(jwks.fetches).toBe(1);
    clock.advance(1_000);
    await expectAccepted(server, tokenOf(ed1, {}, clock.now()));
    expect(jwks.fetches).toBe(2);
  });

  test('when the JWKS names one kid twice, then neither key is used', async () => {
    const { server, jwks, clock } = await setup([ec1]);
    jwks.keys = [publicJwk(ec1), { ...publicJwk(attackerEc), kid: 'ec-1' }, publicJwk(ed1)];
    await expectInvalid(server, tokenOf(ec1));
    await expectInvalid(server, jwt.sign(claims(), attackerEc.privateKey, { algorithm: 'ES256', keyid: 'ec-1' }));
    clock.advance(COOLDOWN);
    await expectAccepted(server, tokenOf(ed1, {}, clock.now()));
  });

  test("when a JWK's alg or use does not fit its key, then that key is not used", async () => {
    const { server, jwks } = await setup([]);
    jwks.keys = [
      { ...publicJwk(ec1), alg: 'EdDSA' },
      { ...publicJwk(ed1), use: 'enc' },
    ];
    await expectInvalid(server, tokenOf(ec1));
    await expectInvalid(server, tokenOf(ed1));
    expect(jwks.fetches).toBe(1);
  });
});

describe('JWKS down', () => {
  const expectUnavailable = async (server: ResourceServer, token: string) => {
    const res = await get(server, token);
    // Not expectProblem: the contract's Problem lists this server's codes, and jwks_unavailable is
    // answered by the services that use the verifier, never by this server.
    expect(res.status).toBe(503);
    expect(res.headers['content-type']).toBe('application/problem+json');
    expect(res.headers['www-authenticate']).toBeUndefined();
    expect(res.body).toEqual({
      type: 'urn:problem-type:jwks_unavailable',
      title: 'Service Unavailable',
      status: 503,
      detail: 'The keys that verify access tokens cannot be fetched right now.',
      code: 'jwks_unavailable',
    });
    expect(Number(res.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    return res;
  };

  test('when the JWKS fails after a fetch, then cached keys keep working, an unknown kid gets 503, and after the cache age every token does until it is back', async () => {
    const { server, jwks, clock } = await setup([ec1, ed1]);
    await expectAccepted(server, tokenOf(ec1));
    jwks.mode = 'error';

    clock.advance(60_000);
    await expectAccepted(server, tokenOf(ec1, {}, clock.now()));
    await expectAccepted(server, tokenOf(ed1, {}, clock.now()));
    expect(jwks.fetches).toBe(1);

    // Unknown kid: the refetch fails, so the verifier cannot tell; 503, and no retry within the cooldown.
    const unknown = jwt.sign(claims({}, clock.now()), ec2.privateKey, { algorithm: 'ES256', keyid: 'ec-2' });
    const first = await expectUnavailable(server, unknown);
    expect(first.headers['retry-after']).toBe('30');
    expect(jwks.fetches).toBe(2);
    clock.advance(10_000);
    const second = await expectUnavailable(server, unknown);
    expect(second.headers['retry-after']).toBe('20');
    expect(jwks.fetches).toBe(2);
    await expectAccepted(server, tokenOf(ec1, {}, clock.now()));

    // Past the cache age, the keys are no longer trusted.
    clock.advance(MAX_AGE);
    await expectUnavailable(server, tokenOf(ec1, {}, clock.now()));
    expect(jwks.fetches).toBe(3);

    // Back: the next fetch (after the cooldown) brings the keys back, ec-2 included now.
    jwks.mode = 'up';
    jwks.keys = [publicJwk(ec1), publicJwk(ec2)];
    clock.advance(COOLDOWN);
    await expectAccepted(server, tokenOf(ec1, {}, clock.now()));
    await expectAccepted(server, tokenOf(ec2, {}, clock.now()));
    expect(jwks.fetches).toBe(4);
  });

  test('when the JWKS server is gone (connection refused), then cached keys keep working and others get 503', async () => {
    const { server, jwks, clock } = await setup([ec1]);
    await expectAccepted(server, tokenOf(ec1));
    await jwks.close();
    clock.advance(COOLDOWN);
    await expectAccepted(server, tokenOf(ec1, {}, clock.now()));
    await expectUnavailable(server, tokenOf(ed1, {}, clock.now()));
  });

  test.each([
    ['answers 500', 'error'],
    ['answers HTML', 'garbage'],
  ] as const)('when the JWKS %s before any key was fetched, then a token gets 503', async (_name, mode) => {
    const { server, jwks } = await setup([ec1]);
    jwks.mode = mode;
    await expectUnavailable(server, tokenOf(ec1));
    expect(jwks.fetches).toBe(1);
  });

  test('when the JWKS does not answer within timeout, then a token gets 503 at about the timeout', async () => {
    const { server, jwks } = await setup([ec1], { timeout: 300 });
    jwks.mode = 'hang';
    const started = Date.now();
    await expectUnavailable(server, tokenOf(ec1));
    expect(Date.now() - started).toBeLessThan(2_500);
  });
});
