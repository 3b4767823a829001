import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import jwt from 'jsonwebtoken';
import { fixedClock } from '../../src/clock';
import { createRedisKeyChangeBus } from '../../src/services/redis-revocation-bus';
import { createKeyring } from '../../src/services/signing-keys';
import { openStore } from '../../src/store/open-store';
import type { Store } from '../../src/store/store';
import { expectContract } from '../support/contract-check';
import { makeApp, TEST_SECRET, type TestApp } from '../support/make-app';
import { createTestDatabase } from '../support/postgres';
import { postgresUp, redisUp } from '../support/services';

const ready = postgresUp() && redisUp();

async function subscribers(redis: Redis, channel: string): Promise<number> {
  const reply = (await redis.pubsub('NUMSUB', channel)) as [string, number];
  return Number(reply[1]);
}

const keyringSettings = {
  algorithm: 'ES256' as const,
  rootSecret: TEST_SECRET,
  accessTokenTtl: 900,
  clockSkew: 30,
  publishLeadMs: 600_000,
  rotationPeriodMs: 0,
};

/** Instances of the server over one PostgreSQL database, as behind a load balancer. */
(ready ? describe : describe.skip)('signing keys shared by several instances over PostgreSQL and Redis', () => {
  const stores: Store[] = [];
  const redis: Redis[] = [];
  const drops: (() => Promise<void>)[] = [];

  afterAll(async () => {
    for (const s of stores) await s.close();
    for (const r of redis) r.disconnect();
    for (const drop of drops) await drop();
  });

  async function database(): Promise<string> {
    const { url, drop } = await createTestDatabase();
    drops.push(drop);
    return url;
  }

  async function instance(url: string, channel?: string): Promise<TestApp> {
    const store = await openStore(url);
    stores.push(store);
    const env = { JWT_ALGORITHM: 'ES256' };
    if (!channel) return makeApp(env, { store });
    const pub = new Redis('redis://127.0.0.1:6379');
    const sub = new Redis('redis://127.0.0.1:6379', { autoResubscribe: false });
    redis.push(pub, sub);
    const before = await subscribers(pub, channel);
    const t = await makeApp(env, { store, keyChangeBus: createRedisKeyChangeBus(pub, sub, channel) });
    for (let i = 0; i < 100 && (await subscribers(pub, channel)) === before; i += 1) await new Promise((r) => setTimeout(r, 10));
    return t;
  }

  test('when ten instances start together on an empty database, then exactly one first key is made and all sign with it', async () => {
    const url = await database();
    const opened = await Promise.all(Array.from({ length: 10 }, () => openStore(url)));
    stores.push(...opened);
    const rings = opened.map((store) => createKeyring({ store, clock: fixedClock(Date.now()), settings: keyringSettings }));
    await Promise.all(rings.map((k) => k.sync()));
    expect(await opened[0]?.listSigningKeys()).toHaveLength(1);
    expect(new Set(rings.map((k) => k.signer().kid)).size).toBe(1);
  });

  test('when two instances rotate at the same moment, then one next key is made and the other is told so', async () => {
    const url = await database();
    const [s1, s2] = [await openStore(url), await openStore(url)];
    stores.push(s1, s2);
    const clock = fixedClock(Date.now());
    const [k1, k2] = [createKeyring({ store: s1, clock, settings: keyringSettings }), createKeyring({ store: s2, clock, settings: keyringSettings })];
    await k1.sync();
    await k2.sync();
    const results = await Promise.allSettled([k1.rotate(), k2.rotate()]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const refused = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    expect(String(refused.reason)).toMatch(/rotated the keys at the same moment|is waiting to sign/);
    expect(await s1.listSigningKeys()).toHaveLength(2);
  });

  test('when automatic rotation falls due on five instances at the same poll, then exactly one next key is made', async () => {
    const url = await database();
    const opened = await Promise.all(Array.from({ length: 5 }, () => openStore(url)));
    stores.push(...opened);
    const clock = fixedClock(Date.now());
    const rings = opened.map((store) => createKeyring({ store, clock, settings: { ...keyringSettings, rotationPeriodMs: 3_600_000 } }));
    await Promise.all(rings.map((k) => k.sync()));
    clock.advance(3_600_000 - 600_000);
    await Promise.all(rings.map((k) => k.sync()));
    const keys = await opened[0]?.listSigningKeys();
    expect(keys).toHaveLength(2);
    await Promise.all(rings.map((k) => k.sync()));
    clock.advance(600_000);
    expect(new Set(rings.map((k) => k.signer().kid))).toEqual(new Set([keys?.[1]?.kid]));
  });

  test('when one instance rotates at once, then the other learns of the new key through the bus within a second and accepts its tokens', async () => {
    const url = await database();
    const channel = `test:keys:${randomBytes(4).toString('hex')}`;
    const a = await instance(url, channel);
    const b = await instance(url, channel);
    expect(b.app.services.keyring.signer().kid).toBe(a.app.services.keyring.signer().kid);
    // Both on the real time line, as two servers would be.
    a.clock.set(Date.now());
    b.clock.set(Date.now());
    const next = await a.app.services.keyring.rotate({ immediately: true });
    const start = Date.now();
    while (Date.now() - start < 1_000 && b.app.services.keyring.verifier(next.kid) === undefined) await new Promise((r) => setTimeout(r, 10));
    expect(b.app.services.keyring.verifier(next.kid)).toBeDefined();
    expect(b.app.services.keyring.signer().kid).toBe(next.kid);
    const u = await a.makeUser({ name: `keys-${randomBytes(3).toString('hex')}` });
    const { access } = await a.login(u.name, u.password);
    expect(jwt.decode(access, { complete: true })?.header.kid).toBe(next.kid);
    const res = expectContract(await b.http().get('/user').set('Authorization', `Bearer ${access}`), 'GET', '/user');
    expect(res.status).toBe(200);
  });

  test('when there is no bus, then the other instance learns of a rotation at its next poll of the store, and publishes the next key then', async () => {
    const url = await database();
    const a = await instance(url);
    const b = await instance(url);
    a.clock.set(Date.now());
    b.clock.set(Date.now());
    const next = await a.app.services.keyring.rotate();
    expect(b.app.services.keyring.publicJwks().map((k) => k.kid)).not.toContain(next.kid);
    await b.app.services.keyring.sync();
    const jwks = expectContract(await b.http().get('/.well-known/jwks.json'), 'GET', '/.well-known/jwks.json');
    expect(jwks.body.keys.map((k: { kid: string }) => k.kid)).toContain(next.kid);
    // Promotion is by time: both instances switch at activate_at with no message at all.
    a.clock.advance(600_000);
    b.clock.advance(600_000);
    expect([a.app.services.keyring.signer().kid, b.app.services.keyring.signer().kid]).toEqual([next.kid, next.kid]);
  });
});
