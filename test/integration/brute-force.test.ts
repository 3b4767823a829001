import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import request, { type Response } from 'supertest';
import { createApp } from '../../src/app';
import { fixedClock } from '../../src/clock';
import { loadConfig } from '../../src/config';
import { isAuthError } from '../../src/errors';
import { createLogger } from '../../src/http/request-log';
import { createHashQueue } from '../../src/services/hash-queue';
import { createLoginLimiter, type LoginLimiter } from '../../src/services/login-limiter';
import { createPasswords, type Passwords } from '../../src/services/passwords';
import { openStore } from '../../src/store/open-store';
import type { Store } from '../../src/store/store';
import { expectContract } from '../support/contract-check';
import { TEST_SECRET } from '../support/make-app';
import { redisUp } from '../support/services';

/**
 * The limits under concurrency: attempts arrive all at once, as an attacker sends them, and the
 * test counts how many passwords were actually checked (argon2 verifications), which is what a
 * limit is for.
 */

let base: Promise<Passwords> | undefined;
/** argon2 at its minimum cost, with the hash queue's limits out of the way (the limiter is under test). */
function basePasswords(): Promise<Passwords> {
  base ??= createPasswords({ memoryCost: 19_456, timeCost: 2, parallelism: 1, queueLimit: 10_000, clientLimit: 10_000 });
  return base;
}

/** Passwords that count the verifications made. */
async function countingPasswords(): Promise<Passwords & { verified: () => number }> {
  const real = await basePasswords();
  let verified = 0;
  return {
    ...real,
    async verify(hash, password, client) {
      verified += 1;
      return real.verify(hash, password, client);
    },
    async verifyDummy(password, client) {
      verified += 1;
      return real.verifyDummy(password, client);
    },
    verified: () => verified,
  };
}

const stores: Store[] = [];
afterAll(async () => {
  await Promise.all(stores.map((s) => s.close()));
});

async function instance(env: Record<string, string>, opts: { store?: Store; limiter?: LoginLimiter } = {}) {
  const config = loadConfig({ NODE_ENV: 'test', JWT_SECRET: TEST_SECRET, DATABASE_URL: 'sqlite::memory:', ...env });
  const store = opts.store ?? (await openStore(config.databaseUrl));
  stores.push(store);
  const passwords = await countingPasswords();
  const app = createApp({
    config,
    store,
    passwords,
    logger: createLogger('silent'),
    clock: fixedClock(Date.now()),
    ...(opts.limiter ? { limiter: opts.limiter } : {}),
  });
  const user = await app.services.auth.addUser(`target-${randomBytes(3).toString('hex')}`, 'the-right-password-1', 'user');
  return { app, store, passwords, user, http: () => request(app.callback()) };
}

/** 200 attempts at once, all wrong but the 199th; returns the answers in order. */
async function storm(send: (i: number, password: string) => Promise<Response>): Promise<Response[]> {
  return Promise.all(Array.from({ length: 200 }, (_, i) => send(i, i === 198 ? 'the-right-password-1' : `guess-${i}`)));
}

const statuses = (answers: Response[]) => {
  const counts: Record<number, number> = {};
  for (const r of answers) counts[r.status] = (counts[r.status] ?? 0) + 1;
  return counts;
};

function report(name: string, figures: Record<string, unknown>): void {
  process.stdout.write(`[limits] ${name}: ${JSON.stringify(figures)}\n`);
}

describe('login limits under 200 parallel attempts', () => {
  test('when 200 guesses for one name come at once from one address, then at most LOGIN_RATE_NAME are checked and the right password among them is not let in', async () => {
    const t = await instance({ LOGIN_RATE_NAME: '10', LOGIN_RATE_IP: '1000' });
    const answers = await storm((_, password) => t.http().post('/login').send({ name: t.user.name, password }));
    for (const r of answers.slice(0, 5)) expectContract(r, 'POST', '/login');
    expect(t.passwords.verified()).toBeLessThanOrEqual(10);
    expect(answers[198]?.status).toBe(429);
    expect(statuses(answers)[200]).toBeUndefined();
    expect(statuses(answers)[429]).toBeGreaterThanOrEqual(190);
    report('one address, one name', { verified: t.passwords.verified(), statuses: statuses(answers) });
  });

  test('when 200 guesses for one account come at once from 200 addresses, then at most LOGIN_RATE_ACCOUNT plus one are checked, and later ones wait a growing delay', async () => {
    const t = await instance({ TRUST_PROXY: 'true', LOGIN_RATE_ACCOUNT: '20', LOGIN_RATE_NAME: '10', LOGIN_RATE_IP: '1000' });
    const answers = await storm((i, password) =>
      t
        .http()
        .post('/login')
        .set('X-Forwarded-For', `198.51.${Math.floor(i / 250)}.${(i % 250) + 1}`)
        .send({ name: t.user.name, password }),
    );
    expect(t.passwords.verified()).toBeLessThanOrEqual(21);
    expect(statuses(answers)[200]).toBeUndefined();
    // A refusal says honestly when to come back: the account's delay, a few seconds at most here.
    const waits = answers.filter((r) => r.status === 429).map((r) => Number(r.headers['retry-after']));
    expect(Math.max(...waits)).toBeLessThanOrEqual(900);
    expect(Math.min(...waits)).toBeGreaterThanOrEqual(1);
    report('200 addresses, one account', { verified: t.passwords.verified(), statuses: statuses(answers) });
  });

  test('when an account is under attack from many addresses, then its owner on a device that logged in before still gets in', async () => {
    const t = await instance({ TRUST_PROXY: 'true', LOGIN_RATE_ACCOUNT: '5', LOGIN_RATE_NAME: '10', LOGIN_RATE_IP: '1000' });
    const owner = () => t.http().post('/login').set('X-Forwarded-For', '203.0.113.9');
    const first = await owner().send({ name: t.user.name, password: 'the-right-password-1' });
    expect(first.status).toBe(200);
    const device = ([] as string[]).concat(first.headers['set-cookie'] ?? []).find((c) => c.startsWith('login_device='));
    expect(device).toMatch(/; path=\/login; .*httponly/i);
    expect(device).toMatch(/samesite=strict/i);
    await storm((i, password) =>
      t
        .http()
        .post('/login')
        .set('X-Forwarded-For', `198.51.100.${(i % 200) + 1}`)
        .send({ name: t.user.name, password: `x${password}` }),
    );
    // A stranger with the right password waits out the account's delay...
    expect((await t.http().post('/login').set('X-Forwarded-For', '192.0.2.1').send({ name: t.user.name, password: 'the-right-password-1' })).status).toBe(429);
    // ...the owner's browser does not, even from the same address the attack used.
    const again = await t
      .http()
      .post('/login')
      .set('X-Forwarded-For', '198.51.100.7')
      .set('Cookie', (device as string).split(';')[0] as string)
      .send({ name: t.user.name, password: 'the-right-password-1' });
    expectContract(again, 'POST', '/login');
    expect(again.status).toBe(200);
    // A device cookie made for another account, or forged, counts for nothing.
    const forged = 'login_device=abc.1.AAAA';
    expect(
      (await t.http().post('/login').set('X-Forwarded-For', '192.0.2.2').set('Cookie', forged).send({ name: t.user.name, password: 'the-right-password-1' }))
        .status,
    ).toBe(429);
  });

  (redisUp() ? test : test.skip)('when two instances share Redis, then 200 guesses split between them still check at most LOGIN_RATE_NAME', async () => {
    const redis = new Redis('redis://127.0.0.1:6379', { enableOfflineQueue: false, lazyConnect: true });
    await redis.connect();
    const keyPrefix = `bf_${randomBytes(4).toString('hex')}`;
    try {
      const limits = { ipPoints: 1_000, namePoints: 10, accountPoints: 20, window: 900 };
      const store = await openStore('sqlite::memory:');
      const a = await instance({}, { store, limiter: createLoginLimiter(limits, redis, { keyPrefix }) });
      const b = await instance({}, { store, limiter: createLoginLimiter(limits, redis, { keyPrefix }) });
      const answers = await storm((i, password) => (i % 2 === 0 ? a : b).http().post('/login').send({ name: a.user.name, password }));
      const verified = a.passwords.verified() + b.passwords.verified();
      expect(verified).toBeLessThanOrEqual(10);
      expect(statuses(answers)[200]).toBeUndefined();
      report('two instances sharing Redis', { verified, statuses: statuses(answers) });
    } finally {
      const keys = await redis.keys(`${keyPrefix}*`);
      if (keys.length > 0) await redis.del(...keys);
      redis.disconnect();
    }
  });
});

describe('PUT /user/password limits', () => {
  test('when a stolen access token guesses the current password, then after LOGIN_RATE_NAME wrong guesses even the right one gets 429', async () => {
    const t = await instance({ LOGIN_RATE_NAME: '5', LOGIN_RATE_IP: '1000' });
    const login = await t.http().post('/login').send({ name: t.user.name, password: 'the-right-password-1' });
    const auth = `Bearer ${login.body.access_token as string}`;
    const guesses = await Promise.all(
      Array.from({ length: 60 }, (_, i) =>
        t
          .http()
          .put('/user/password')
          .set('Authorization', auth)
          .send({ current_password: `guess-${i}`, new_password: 'a-new-password-42' }),
      ),
    );
    expect(statuses(guesses)).toEqual({ 403: 5, 429: 55 });
    const right = await t
      .http()
      .put('/user/password')
      .set('Authorization', auth)
      .send({ current_password: 'the-right-password-1', new_password: 'a-new-password-42' });
    expectContract(right, 'PUT', '/user/password');
    expect([right.status, right.body.code]).toEqual([429, 'rate_limited']);
  });

  test('when the new password is the current one, then it is refused as weak', async () => {
    const t = await instance({});
    const login = await t.http().post('/login').send({ name: t.user.name, password: 'the-right-password-1' });
    const res = await t
      .http()
      .put('/user/password')
      .set('Authorization', `Bearer ${login.body.access_token as string}`)
      .send({ current_password: 'the-right-password-1', new_password: 'the-right-password-1' });
    expectContract(res, 'PUT', '/user/password');
    expect([res.status, res.body.code, res.body.errors]).toEqual([
      422,
      'weak_password',
      [{ pointer: '/body/new_password', message: 'is the current password' }],
    ]);
  });
});

describe('PUT /user/password policy', () => {
  test("when the new password is the user's own name or a common password, then it is refused as weak and the old one still works", async () => {
    const t = await instance({});
    const login = await t.http().post('/login').send({ name: t.user.name, password: 'the-right-password-1' });
    const auth = `Bearer ${login.body.access_token as string}`;
    for (const weak of [t.user.name.toUpperCase(), 'password1']) {
      const res = await t.http().put('/user/password').set('Authorization', auth).send({ current_password: 'the-right-password-1', new_password: weak });
      expectContract(res, 'PUT', '/user/password');
      expect([weak, res.status, res.body.code]).toEqual([weak, 422, 'weak_password']);
    }
    expect((await t.http().post('/login').send({ name: t.user.name, password: 'the-right-password-1' })).status).toBe(200);
  });
});

describe('the hash queue', () => {
  /** Work that ends when told to, recording the order in which it started. */
  function gatedWork(log: string[]) {
    const gates: (() => void)[] = [];
    const work = (name: string) => () =>
      new Promise<string>((resolve) => {
        log.push(name);
        gates.push(() => resolve(name));
      });
    return { work, release: () => gates.shift()?.() };
  }

  test('when one client queues a burst, then another client is served next, not after the burst', async () => {
    const q = createHashQueue({ concurrency: 1, maxQueued: 100, perClient: 100 });
    const started: string[] = [];
    const { work, release } = gatedWork(started);
    const all = [...Array.from({ length: 6 }, (_, i) => q.run('attacker', work(`a${i}`))), q.run('victim', work('v'))];
    for (let i = 0; i < 7; i += 1) {
      await new Promise((r) => setImmediate(r));
      release();
    }
    await Promise.all(all);
    // Clients take turns: the attacker's queue came first and has its turn, then the victim's
    // hash runs, third rather than seventh (behind one turn of each client, not the whole burst).
    expect(started).toEqual(['a0', 'a1', 'v', 'a2', 'a3', 'a4', 'a5']);
  });

  test('when a client has its share running or waiting, then its next hash is refused at once with 429; when the queue is full, 503', async () => {
    const q = createHashQueue({ concurrency: 1, maxQueued: 5, perClient: 3 });
    const { work } = gatedWork([]);
    const mine = Array.from({ length: 3 }, (_, i) => q.run('a', work(`a${i}`)));
    const refused = await q.run('a', work('a3')).catch((e: unknown) => e);
    expect(isAuthError(refused, 'rate_limited') && refused.status).toBe(429);
    expect(isAuthError(refused) && refused.headers).toEqual({ 'Retry-After': '1' });
    void q.run('b', work('b0'));
    void q.run('c', work('c0'));
    const full = await q.run('d', work('d0')).catch((e: unknown) => e);
    expect(isAuthError(full, 'server_busy') && full.status).toBe(503);
    expect([q.running, q.waiting]).toEqual([1, 4]);
    void mine;
  });

  test('when 150 junk logins from one address arrive, then most are refused at once and another user logs in among the first', async () => {
    const config = loadConfig({
      NODE_ENV: 'test',
      JWT_SECRET: TEST_SECRET,
      DATABASE_URL: 'sqlite::memory:',
      TRUST_PROXY: 'true',
      LOGIN_RATE_IP: '100000',
      LOGIN_RATE_NAME: '100000',
      LOGIN_RATE_ACCOUNT: '100000',
    });
    const store = await openStore(config.databaseUrl);
    stores.push(store);
    const passwords = await createPasswords({ memoryCost: 19_456, timeCost: 2, parallelism: 1, concurrency: 1, queueLimit: 64, clientLimit: 4 });
    const app = createApp({ config, store, passwords, logger: createLogger('silent') });
    await app.services.auth.addUser('victim', 'victim-password-1', 'user');
    const http = () => request(app.callback());
    const order: string[] = [];
    const junk = Array.from({ length: 150 }, (_, i) =>
      http()
        .post('/login')
        .set('X-Forwarded-For', '198.51.100.66')
        .send({ name: `junk${i}`, password: 'junk-password' })
        .then((r) => {
          order.push(`junk ${r.status}`);
          return r;
        }),
    );
    const victim = http()
      .post('/login')
      .set('X-Forwarded-For', '203.0.113.20')
      .send({ name: 'victim', password: 'victim-password-1' })
      .then((r) => {
        order.push(`victim ${r.status}`);
        return r;
      });
    const [answers, mine] = await Promise.all([Promise.all(junk), victim]);
    expect(mine.status).toBe(200);
    // The junk client had at most ARGON2_CLIENT_LIMIT hashes in the queue; the rest were refused
    // at once, with Retry-After.
    const refused = answers.filter((r) => r.status === 429);
    expect(refused.length).toBeGreaterThanOrEqual(140);
    for (const r of refused.slice(0, 3)) {
      expectContract(r, 'POST', '/login');
      expect(r.headers['retry-after']).toBe('1');
    }
    // The victim was answered before the junk that was hashed: ahead of all but a few of them.
    const hashedJunkBefore = order.slice(0, order.indexOf('victim 200')).filter((o) => o === 'junk 401').length;
    expect(hashedJunkBefore).toBeLessThanOrEqual(4);
  });
});
