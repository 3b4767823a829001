import { AuthError } from '../../src/errors';
import { nameSkeleton } from '../../src/services/names';
import { hashToken } from '../../src/services/tokens';
import { openStore } from '../../src/store/open-store';
import type { Store } from '../../src/store/store';
import { expectContract } from '../support/contract-check';
import { createTestDatabase } from '../support/postgres';
import { postgresUp } from '../support/services';
import { makeApp } from '../support/make-app';

type Backend = { name: string; up: boolean; open: () => Promise<{ store: Store; url: string; cleanup: () => Promise<void> }> };

const backends: Backend[] = [
  {
    name: 'SQLite',
    up: true,
    open: async () => ({ store: await openStore('sqlite::memory:'), url: 'sqlite::memory:', cleanup: async () => undefined }),
  },
  {
    name: 'PostgreSQL',
    up: postgresUp(),
    open: async () => {
      const db = await createTestDatabase();
      return { store: await openStore(db.url), url: db.url, cleanup: db.drop };
    },
  },
];

const T0 = Date.UTC(2026, 0, 1);
const newUser = (id: string, name: string) => ({
  id,
  name,
  nameKey: name.toLowerCase(),
  nameSkeleton: nameSkeleton(name),
  passwordHash: '$argon2id$fake',
  role: 'user' as const,
  now: T0,
});

/** Twenty names that differ as stored (each its own name key) but look alike: one skeleton. */
const LOOK_ALIKES = [
  'mallory',
  'màllory',
  'mállory',
  'mâllory',
  'mãllory',
  'mällory',
  'mållory',
  'mallòry',
  'mallóry',
  'mallôry',
  'mallõry',
  'mallöry',
  'mallorý',
  'mallorÿ',
  'malloŕy',
  'rnallory',
  'rnàllory',
  '\u1E3Fallory',
  'mallor\u0303y',
  'maĺlory',
];

for (const { name, up, open } of backends)
  (up ? describe : describe.skip)(`the ${name} store`, () => {
    let store: Store;
    let url: string;
    let cleanup: () => Promise<void>;

    beforeAll(async () => {
      ({ store, url, cleanup } = await open());
    });
    afterAll(async () => {
      await store.close();
      await cleanup();
    });

    test('when a user is created, then it reads back the same, with timestamps as numbers', async () => {
      await store.createUser(newUser('u1', 'Uma'));
      const u = await store.findUserByNameKey('uma');
      expect(u).toEqual({ id: 'u1', name: 'Uma', nameKey: 'uma', passwordHash: '$argon2id$fake', role: 'user', disabled: false, createdAt: T0, updatedAt: T0 });
      expect(await store.countUsers()).toBeGreaterThanOrEqual(1);
    });

    test('when a name key is taken, then createUser throws name_taken', async () => {
      await store.createUser(newUser('u2', 'Vic'));
      await expect(store.createUser(newUser('u3', 'Vic'))).rejects.toEqual(expect.objectContaining({ code: 'name_taken' }));
      await expect(store.createUser(newUser('u3', 'Vic'))).rejects.toBeInstanceOf(AuthError);
    });

    test('when a name of another key has a taken skeleton, then createUser throws name_taken saying it is too similar', async () => {
      await store.createUser(newUser('u7', 'admin'));
      const lookAlike = { ...newUser('u8', 'Admiń'), nameKey: 'admiń' };
      await expect(store.createUser(lookAlike)).rejects.toEqual(
        expect.objectContaining({ code: 'name_taken', message: 'That name is too similar to an existing name.' }),
      );
      expect(await store.findUserById('u8')).toBeUndefined();
    });

    test('when a refresh token is rotated twice at once, then exactly one rotation wins', async () => {
      await store.createUser(newUser('u4', 'Wes'));
      await store.createSession(
        { id: 's4', userId: 'u4', createdAt: T0, lastUsedAt: T0, expiresAt: T0 + 86_400_000, userAgent: null },
        { tokenHash: hashToken('h0'), parentHash: null, expiresAt: T0 + 3_600_000 },
      );
      const results = await Promise.all(
        ['h1', 'h2', 'h3', 'h4'].map((h) =>
          store.rotateRefreshToken(hashToken('h0'), { tokenHash: hashToken(h), parentHash: null, expiresAt: T0 + 3_600_000 }, T0 + 1000),
        ),
      );
      expect(results.filter((r) => r.outcome === 'rotated')).toHaveLength(1);
      expect(results.filter((r) => r.outcome === 'reused')).toHaveLength(3);
    });

    test('when a session is revoked, then the revocation log reports it and its tokens no longer rotate', async () => {
      await store.createUser(newUser('u5', 'Xia'));
      await store.createSession(
        { id: 's5', userId: 'u5', createdAt: T0, lastUsedAt: T0, expiresAt: T0 + 86_400_000, userAgent: 'ua' },
        { tokenHash: hashToken('k0'), parentHash: null, expiresAt: T0 + 3_600_000 },
      );
      expect(await store.revokeSession('s5', 'logout', T0 + 5)).toBe(true);
      expect(await store.revokeSession('s5', 'logout', T0 + 6)).toBe(false);
      const logged = await store.revocationsAfter(undefined, T0);
      expect(logged.revocations).toEqual(expect.arrayContaining([{ sessionId: 's5', revokedAt: T0 + 5 }]));
      // Revoking it again logs nothing more.
      expect((await store.revocationsAfter(logged.cursor, T0)).revocations).toEqual([]);
      const r = await store.rotateRefreshToken(hashToken('k0'), { tokenHash: hashToken('k1'), parentHash: null, expiresAt: T0 + 3_600_000 }, T0 + 10);
      expect(r.outcome).toBe('invalid');
    });

    test('when sessions ended long ago, then pruning removes them and their tokens', async () => {
      await store.createUser(newUser('u6', 'Yan'));
      await store.createSession(
        { id: 's6', userId: 'u6', createdAt: T0, lastUsedAt: T0, expiresAt: T0 + 1000, userAgent: null },
        { tokenHash: hashToken('p0'), parentHash: null, expiresAt: T0 + 1000 },
      );
      expect(await store.pruneSessions(T0 + 2000)).toBeGreaterThanOrEqual(1);
      expect(await store.findSession('s6')).toBeUndefined();
    });

    test('when the whole app runs on it, then login, refresh, logout and revocation work', async () => {
      const t = await makeApp({ DATABASE_URL: url }, { store });
      const u = await t.makeUser({ name: 'zed' });
      const first = await t.login('zed', u.password);
      const refreshed = await t.http().post('/refresh').send({ refresh_token: first.refresh });
      expect(refreshed.status).toBe(200);
      const access = refreshed.body.access_token as string;
      expect((await t.http().get('/user').set('Authorization', `Bearer ${access}`)).status).toBe(200);
      expect((await t.http().post('/logout').set('Authorization', `Bearer ${access}`)).status).toBe(204);
      expect((await t.http().get('/user').set('Authorization', `Bearer ${access}`)).status).toBe(401);
      expect((await t.http().post('/refresh').send({ refresh_token: refreshed.body.refresh_token })).status).toBe(401);
      await t.store.ping();
    });

    test('when twenty sign-ups of look-alike names race, then exactly one account is made and the rest get 409', async () => {
      expect(new Set(LOOK_ALIKES.map((n) => n.normalize('NFKC').toLowerCase())).size).toBe(20);
      expect(new Set(LOOK_ALIKES.map(nameSkeleton)).size).toBe(1);
      // From twenty addresses: one address gets only a few hashes at once.
      const t = await makeApp({ DATABASE_URL: url, ALLOW_SIGNUP: 'true', TRUST_PROXY: 'true' }, { store });
      const results = await Promise.all(
        LOOK_ALIKES.map((name, i) =>
          t
            .http()
            .post('/users')
            .set('X-Forwarded-For', `198.51.100.${i + 1}`)
            .send({ name, password: 'look-alike-password' }),
        ),
      );
      for (const res of results) expectContract(res, 'POST', '/users');
      expect(results.map((r) => r.status).sort()).toEqual([201, ...Array(19).fill(409)]);
      for (const res of results.filter((r) => r.status === 409)) expect(res.body.code).toBe('name_taken');
      const made = (await store.listUsers()).filter((u) => nameSkeleton(u.name) === nameSkeleton('mallory'));
      expect(made.map((u) => u.name)).toEqual([results.find((r) => r.status === 201)?.body.name]);
    });
  });
