import { createHmac, createPublicKey, generateKeyPairSync, type JsonWebKey, sign as cryptoSign, verify as cryptoVerify } from 'node:crypto';
import jwt from 'jsonwebtoken';
import type { Response } from 'supertest';
import { createKeyring } from '../../src/services/signing-keys';
import { expectContract } from '../support/contract-check';
import { makeApp, type TestApp } from '../support/make-app';

const SECOND = 1_000;
const MINUTE = 60 * SECOND;
const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

async function getUser(t: TestApp, token: string): Promise<Response> {
  return expectContract(await t.http().get('/user').set('Authorization', `Bearer ${token}`), 'GET', '/user');
}

function expectInvalidToken(res: Response): void {
  expect([res.status, res.body.code, res.body.detail]).toEqual([401, 'invalid_token', 'The access token is invalid.']);
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
}

async function setup(env: Record<string, string> = {}) {
  const t = await makeApp(env);
  const u = await t.makeUser({ name: 'alice' });
  const { access } = await t.login('alice', u.password);
  return { t, u, access, claims: jwt.decode(access) as jwt.JwtPayload, header: jwt.decode(access, { complete: true })?.header as jwt.JwtHeader };
}

describe('GET /.well-known/jwks.json', () => {
  test.each([
    ['ES256', { kty: 'EC', crv: 'P-256', alg: 'ES256', use: 'sig' }],
    ['EdDSA', { kty: 'OKP', crv: 'Ed25519', alg: 'EdDSA', use: 'sig' }],
  ])('when the server signs with %s, then the JWKS has the current key (public parts only), and a token of the server verifies with it', async (alg, want) => {
    const { t, access, header } = await setup({ JWT_ALGORITHM: alg });
    const res = expectContract(await t.http().get('/.well-known/jwks.json'), 'GET', '/.well-known/jwks.json');
    expect(res.status).toBe(200);
    expect(res.body.keys).toHaveLength(1);
    const key = res.body.keys[0];
    expect(key).toMatchObject({ ...want, kid: header.kid });
    expect(key).not.toHaveProperty('d');
    expect(header.alg).toBe(alg);
    // A resource server's check: the published key verifies the token (node:crypto, by the JWK).
    const publicKey = createPublicKey({ key: key as JsonWebKey, format: 'jwk' });
    if (alg === 'ES256') expect(jwt.verify(access, publicKey, { algorithms: ['ES256'] })).toMatchObject({ name: 'alice' });
    else {
      const [h, p, s] = access.split('.') as [string, string, string];
      expect(cryptoVerify(null, Buffer.from(`${h}.${p}`), publicKey, Buffer.from(s, 'base64url'))).toBe(true);
    }
    expect((await getUser(t, access)).status).toBe(200);
    await t.close();
  });

  test('when the server signs with HS256, then the JWKS is empty: a symmetric key is never published', async () => {
    const { t } = await setup();
    const res = expectContract(await t.http().get('/.well-known/jwks.json'), 'GET', '/.well-known/jwks.json');
    expect([res.status, res.body]).toEqual([200, { keys: [] }]);
    await t.close();
  });

  test('when asked, then it is cacheable for less than the publish lead, has a strong ETag, and If-None-Match with it answers 304', async () => {
    const { t } = await setup({ JWT_ALGORITHM: 'ES256', JWT_KEY_PUBLISH_LEAD: '600' });
    const first = expectContract(await t.http().get('/.well-known/jwks.json'), 'GET', '/.well-known/jwks.json');
    expect(first.headers['cache-control']).toBe('public, max-age=300');
    const etag = first.headers['etag'] as string;
    expect(etag).toMatch(/^"[A-Za-z0-9_-]+"$/);
    const again = expectContract(await t.http().get('/.well-known/jwks.json').set('If-None-Match', etag), 'GET', '/.well-known/jwks.json');
    expect([again.status, again.text, again.headers['etag']]).toEqual([304, '', etag]);
    const list = await t.http().get('/.well-known/jwks.json').set('If-None-Match', `"other", W/${etag}`);
    expect(list.status).toBe(304);
    const stale = await t.http().get('/.well-known/jwks.json').set('If-None-Match', '"something-else"');
    expect(stale.status).toBe(200);
    // A rotation publishes the next key at once: another body, another ETag.
    await t.app.services.keyring.rotate();
    const rotated = expectContract(await t.http().get('/.well-known/jwks.json').set('If-None-Match', etag), 'GET', '/.well-known/jwks.json');
    expect(rotated.status).toBe(200);
    expect(rotated.body.keys).toHaveLength(2);
    expect(rotated.headers['etag']).not.toBe(etag);
    await t.close();
  });

  test('when the publish lead is short, then max-age is under half of it', async () => {
    const { t } = await setup({ JWT_ALGORITHM: 'ES256', JWT_KEY_PUBLISH_LEAD: '60' });
    expect((await t.http().get('/.well-known/jwks.json')).headers['cache-control']).toBe('public, max-age=30');
    await t.close();
  });
});

describe('GET /.well-known/oauth-authorization-server', () => {
  test('when PUBLIC_URL is set, then issuer, jwks_uri and token_endpoint are built from it, with the algorithm', async () => {
    const { t } = await setup({ JWT_ALGORITHM: 'EdDSA', PUBLIC_URL: 'https://auth.example/' });
    const res = expectContract(await t.http().get('/.well-known/oauth-authorization-server'), 'GET', '/.well-known/oauth-authorization-server');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      issuer: 'https://auth.example',
      jwks_uri: 'https://auth.example/.well-known/jwks.json',
      token_endpoint: 'https://auth.example/login',
      token_endpoint_auth_methods_supported: ['none'],
      response_types_supported: [],
      access_token_signing_alg_values_supported: ['EdDSA'],
    });
    await t.close();
  });

  test('when PUBLIC_URL is unset, then the URLs are the request origin', async () => {
    const { t } = await setup();
    const res = await t.http().get('/.well-known/oauth-authorization-server').set('Host', 'localhost:3000');
    expect(res.body.jwks_uri).toBe('http://localhost:3000/.well-known/jwks.json');
    await t.close();
  });
});

describe('tokens are verified by kid, with the key own algorithm', () => {
  test('when a token has no kid, or an unknown kid, then 401 invalid_token; the control with the right kid is accepted', async () => {
    const { t, claims, header } = await setup();
    expect((await getUser(t, t.sign({ ...claims, jti: 'control' }))).status).toBe(200);
    const key = t.app.services.keyring.signer().key;
    expectInvalidToken(await getUser(t, jwt.sign({ ...claims, jti: 'no-kid' }, key, { algorithm: 'HS256' })));
    expectInvalidToken(await getUser(t, jwt.sign({ ...claims, jti: 'unknown' }, key, { algorithm: 'HS256', keyid: `${header.kid}x` })));
    await t.close();
  });

  test('when ES256 is configured and a token says HS256 with the kid of the ES256 key, HMAC-signed with its public key (alg confusion), then 401', async () => {
    const { t, claims, header } = await setup({ JWT_ALGORITHM: 'ES256' });
    const jwk = (await t.http().get('/.well-known/jwks.json')).body.keys[0];
    const pem = createPublicKey({ key: jwk, format: 'jwk' }).export({ format: 'pem', type: 'spki' }) as string;
    for (const secret of [pem, JSON.stringify(jwk), Buffer.from(jwk.x, 'base64url')]) {
      const input = `${b64({ alg: 'HS256', typ: 'JWT', kid: header.kid })}.${b64(claims)}`;
      expectInvalidToken(await getUser(t, `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`));
    }
    await t.close();
  });

  test('when ES256 is configured, then an HS256 token signed with JWT_SECRET itself is refused', async () => {
    const { t, claims, header } = await setup({ JWT_ALGORITHM: 'ES256' });
    expectInvalidToken(await getUser(t, jwt.sign(claims, t.config.jwtSecret as string, { algorithm: 'HS256', keyid: header.kid })));
    expectInvalidToken(await getUser(t, jwt.sign(claims, t.config.jwtSecret as string, { algorithm: 'HS256' })));
    await t.close();
  });

  test('when a token carries its own key (jwk header) or points at one (jku, x5u), then 401, even with the server kid', async () => {
    const { t, claims, header } = await setup({ JWT_ALGORITHM: 'ES256' });
    const attacker = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const attackerJwk = attacker.publicKey.export({ format: 'jwk' });
    const forged = [
      { alg: 'ES256', typ: 'JWT', jwk: { ...attackerJwk, kid: 'evil' }, kid: 'evil' },
      { alg: 'ES256', typ: 'JWT', jwk: { ...attackerJwk, kid: header.kid }, kid: header.kid },
      { alg: 'ES256', typ: 'JWT', jku: 'http://127.0.0.1:9/jwks.json', kid: 'evil' },
      { alg: 'ES256', typ: 'JWT', jku: 'http://127.0.0.1:9/jwks.json', kid: header.kid },
      { alg: 'ES256', typ: 'JWT', x5u: 'http://127.0.0.1:9/cert.pem', kid: header.kid },
    ];
    for (const h of forged) {
      const token = jwt.sign({ ...claims, role: 'admin' }, attacker.privateKey, { algorithm: 'ES256', header: h });
      expectInvalidToken(await getUser(t, token));
    }
    // The server's own key with a jku header: refused too, a key-bearing header is never accepted.
    const signer = t.app.services.keyring.signer();
    const withJku = jwt.sign(claims, signer.key, { algorithm: 'ES256', header: { alg: 'ES256', kid: signer.kid, jku: 'http://127.0.0.1:9/' } });
    expectInvalidToken(await getUser(t, withJku));
    await t.close();
  });

  test('when EdDSA is configured, then a forged or tampered EdDSA token is refused and an expired one says so', async () => {
    const { t, access, claims, header } = await setup({ JWT_ALGORITHM: 'EdDSA' });
    expect((await getUser(t, access)).status).toBe(200);
    const [h, , s] = access.split('.') as [string, string, string];
    expectInvalidToken(await getUser(t, `${h}.${b64({ ...claims, role: 'admin' })}.${s}`));
    const other = generateKeyPairSync('ed25519');
    const input = `${b64({ alg: 'EdDSA', typ: 'JWT', kid: header.kid })}.${b64(claims)}`;
    expectInvalidToken(await getUser(t, `${input}.${cryptoSign(null, Buffer.from(input), other.privateKey).toString('base64url')}`));
    t.clock.advance(16 * MINUTE);
    const expired = await getUser(t, access);
    expect([expired.status, expired.body.detail]).toEqual([401, 'The access token has expired.']);
    await t.close();
  });
});

describe('rotation without logouts', () => {
  test('when keys rotate while a client keeps calling GET /user, then no call gets 401; old tokens live out their TTL and new logins get the new kid', async () => {
    const { t, u, access, header } = await setup({ JWT_ALGORITHM: 'ES256', JWT_KEY_PUBLISH_LEAD: '600' });
    const oldKid = header.kid;
    const next = await t.app.services.keyring.rotate();
    const statuses: number[] = [];
    // Ten minutes of calls, one every 30 s, across the hand-over; then refresh-free until exp.
    for (let i = 0; i < 20; i += 1) {
      statuses.push((await getUser(t, access)).status);
      t.clock.advance(30 * SECOND);
    }
    expect(statuses.every((s) => s === 200)).toBe(true);
    expect(t.app.services.keyring.signer().kid).toBe(next.kid);
    const fresh = await t.login('alice', u.password);
    expect(jwt.decode(fresh.access, { complete: true })?.header.kid).toBe(next.kid);
    expect((await getUser(t, fresh.access)).status).toBe(200);
    // The old token expires on its own (15 min after it was issued, with the 30 s skew), not
    // because of the rotation.
    t.clock.advance(4 * MINUTE + 59 * SECOND);
    expect((await getUser(t, access)).status).toBe(200);
    t.clock.advance(32 * SECOND);
    const expired = await getUser(t, access);
    expect([expired.status, expired.body.detail]).toEqual([401, 'The access token has expired.']);
    expect(oldKid).not.toBe(next.kid);
    await t.close();
  });

  test('when a key is removed, then its tokens are refused at once, even ones verified (and cached) before', async () => {
    const { t, access, header } = await setup({ JWT_ALGORITHM: 'ES256' });
    expect((await getUser(t, access)).status).toBe(200);
    expect(t.app.services.tokens.cachedAccess(access)).toBeDefined();
    await t.app.services.keyring.rotate({ immediately: true });
    expect((await getUser(t, access)).status).toBe(200);
    await t.app.services.keyring.remove(header.kid as string, { force: true });
    expectInvalidToken(await getUser(t, access));
    await t.close();
  });

  test('when a kid is unknown at first and then learned (a key made by another instance), then the same token is accepted: the refusal was not remembered', async () => {
    const { t, claims } = await setup({ JWT_ALGORITHM: 'ES256' });
    // Another instance (another keyring over the same store) rotates at once; this one has not synced.
    const other = createKeyring({
      store: t.store,
      clock: t.clock,
      settings: { algorithm: 'ES256', rootSecret: t.config.jwtSecret as string, accessTokenTtl: 900, clockSkew: 30, publishLeadMs: 0, rotationPeriodMs: 0 },
    });
    await other.sync();
    await other.rotate({ immediately: true });
    const signer = other.signer();
    const token = jwt.sign({ ...claims, jti: 'from-b' }, signer.key, { algorithm: 'ES256', keyid: signer.kid });
    expectInvalidToken(await getUser(t, token));
    await t.app.services.keyring.sync();
    expect((await getUser(t, token)).status).toBe(200);
    await t.close();
  });
});

describe('GET /.well-known/jwks.json refuses what the contract refuses', () => {
  test('when If-None-Match is longer than 1024 characters, then 400 invalid_request naming the header', async () => {
    const { t } = await setup({ JWT_ALGORITHM: 'ES256' });
    const res = expectContract(
      await t
        .http()
        .get('/.well-known/jwks.json')
        .set('If-None-Match', `"${'a'.repeat(1_030)}"`),
      'GET',
      '/.well-known/jwks.json',
    );
    expect([res.status, res.body.code, res.body.errors]).toEqual([
      400,
      'invalid_request',
      [{ pointer: '/headers/if-none-match', message: 'must be at most 1024 characters' }],
    ]);
    await t.close();
  });
});

describe('key changes in the audit trail', () => {
  test('when a key is rotated, retired and removed (and rotated by the schedule), then each change is an audit event naming the kid and what triggered it', async () => {
    const { t, header } = await setup({ JWT_ALGORITHM: 'ES256', JWT_KEY_PUBLISH_LEAD: '600', JWT_KEY_ROTATION_PERIOD: '86400' });
    const keyring = t.app.services.keyring;
    const next = await keyring.rotate();
    await keyring.retire(next.kid);
    await keyring.remove(next.kid);
    // A day on, the schedule makes the next key by itself.
    t.clock.advance(86_400 * SECOND);
    await keyring.sync();
    const events = (await t.store.listAudit({ limit: 50 })).filter((e) => e.event.startsWith('key_')).reverse();
    expect(events.map((e) => [e.event, e.actorId, (e.details as { kid: string }).kid, (e.details as { trigger: string }).trigger])).toEqual([
      ['key_rotated', null, next.kid, 'command'],
      ['key_retired', null, next.kid, 'command'],
      ['key_removed', null, next.kid, 'command'],
      ['key_rotated', null, expect.not.stringMatching(`^(${next.kid}|${header.kid as string})$`), 'schedule'],
    ]);
    expect((events[2]?.details as { forced: boolean }).forced).toBe(false);
    await t.close();
  });
});
