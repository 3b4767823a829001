import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { createRedisRevocationBus } from '../../src/services/redis-revocation-bus';
import { openStore } from '../../src/store/open-store';
import type { Store } from '../../src/store/store';
import { expectContract } from '../support/contract-check';
import { makeApp, type TestApp } from '../support/make-app';
import { createTestDatabase } from '../support/postgres';
import { postgresUp, redisUp } from '../support/services';

const ready = postgresUp() && redisUp();

async function subscribers(redis: Redis, channel: string): Promise<number> {
  const reply = (await redis.pubsub('NUMSUB', channel)) as [string, number];
  return Number(reply[1]);
}

/** Two instances of the server over one PostgreSQL database, as behind a load balancer. */
(ready ? describe : describe.skip)('several instances over PostgreSQL and Redis', () => {
  let url: string;
  let drop: () => Promise<void>;
  const stores: Store[] = [];
  const redis: Redis[] = [];

  beforeAll(async () => {
    ({ url, drop } = await createTestDatabase());
  });
  afterAll(async () => {
    for (const s of stores) await s.close();
    for (const r of redis) r.disconnect();
    await drop();
  });

  async function instance(channel?: string): Promise<TestApp> {
    const store = await openStore(url);
    stores.push(store);
    if (!channel) return makeApp({}, { store });
    const pub = new Redis('redis://127.0.0.1:6379');
    const sub = new Redis('redis://127.0.0.1:6379', { autoResubscribe: false });
    redis.push(pub, sub);
    const before = await subscribers(pub, channel);
    const t = await makeApp({}, { store, revocationBus: createRedisRevocationBus(pub, sub, { channel }) });
    // Wait (bounded) until the subscription is live, or the first message could be missed.
    for (let i = 0; i < 100 && (await subscribers(pub, channel)) === before; i += 1) await new Promise((r) => setTimeout(r, 10));
    return t;
  }

  const getUser = async (t: TestApp, token: string) => expectContract(await t.http().get('/user').set('Authorization', `Bearer ${token}`), 'GET', '/user');

  async function waitFor401(t: TestApp, token: string, boundMs: number): Promise<number> {
    const start = Date.now();
    while (Date.now() - start < boundMs) {
      if ((await getUser(t, token)).status === 401) return Date.now() - start;
      await new Promise((r) => setTimeout(r, 10));
    }
    return -1;
  }

  test('when a session is logged out on one instance, then the other refuses its token within a second, through the bus', async () => {
    const channel = `test:revocations:${randomBytes(4).toString('hex')}`;
    const a = await instance(channel);
    const b = await instance(channel);
    const u = await a.makeUser({ name: `multi-${randomBytes(3).toString('hex')}` });
    const { access } = await a.login(u.name, u.password);
    expect((await getUser(b, access)).status).toBe(200);
    expect((await a.http().post('/logout').set('Authorization', `Bearer ${access}`)).status).toBe(204);
    expect(await waitFor401(b, access, 1_000)).toBeGreaterThanOrEqual(0);
  });

  test('when there is no bus, then the other instance learns of the logout at its next poll of the store', async () => {
    const a = await instance();
    const b = await instance();
    const u = await a.makeUser({ name: `poll-${randomBytes(3).toString('hex')}` });
    const { access } = await a.login(u.name, u.password);
    await b.app.services.revocations.sync();
    expect((await a.http().post('/logout').set('Authorization', `Bearer ${access}`)).status).toBe(204);
    expect((await getUser(b, access)).status).toBe(200);
    await b.app.services.revocations.sync();
    expect((await getUser(b, access)).status).toBe(401);
  });
});
