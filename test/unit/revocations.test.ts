import type { Response } from 'supertest';
import { fixedClock } from '../../src/clock';
import { createRevocationList, STARTUP_SLACK_MS } from '../../src/services/revocations';
import { openStore } from '../../src/store/open-store';
import type { Revocation, RevocationBatch, Store } from '../../src/store/store';
import { expectContract } from '../support/contract-check';
import { makeApp, type TestApp } from '../support/make-app';

const RETAIN = 930_000;

/**
 * A store whose revocation log is `rows` in commit order (the cursor is how many were read), and
 * which records every cursor it was asked from.
 */
function fakeStore(rows: Revocation[] = []) {
  const asked: (number | undefined)[] = [];
  let failures = 0;
  let hang = false;
  const store = {
    async revocationsAfter(cursor: number | undefined, since: number): Promise<RevocationBatch> {
      asked.push(cursor);
      if (hang) return new Promise<RevocationBatch>(() => undefined);
      if (failures > 0) {
        failures -= 1;
        throw new Error('store down');
      }
      if (cursor === undefined) return { revocations: rows.filter((r) => r.revokedAt >= since), cursor: rows.length, more: false };
      return { revocations: rows.slice(cursor), cursor: rows.length, more: false };
    },
  } as Partial<Store> as Store;
  return { store, rows, asked, failNext: (n = 1) => (failures = n), hangFromNow: () => (hang = true) };
}

describe('the revocation list', () => {
  test('when a session is added, then it is revoked and others are not', () => {
    const clock = fixedClock();
    const list = createRevocationList({ store: fakeStore().store, clock, retainMs: RETAIN });
    list.add('s1', clock.now());
    expect([list.has('s1'), list.has('s2'), list.size]).toEqual([true, false, 1]);
  });

  test('when RETAIN has passed since a revocation, then the next sync drops it; younger ones stay (the list is bounded)', async () => {
    const clock = fixedClock();
    const t0 = clock.now();
    const list = createRevocationList({ store: fakeStore().store, clock, retainMs: RETAIN });
    list.add('old', t0);
    list.add('young', t0 + RETAIN / 2);
    clock.set(t0 + RETAIN - 1);
    await list.sync();
    expect([list.has('old'), list.has('young'), list.size]).toEqual([true, true, 2]);
    clock.set(t0 + RETAIN + 1);
    await list.sync();
    expect([list.has('old'), list.has('young'), list.size]).toEqual([false, true, 1]);
    clock.set(t0 + RETAIN * 2);
    await list.sync();
    expect(list.size).toBe(0);
  });

  test('when many sessions are revoked over time, then the list never holds more than one retain window of them', async () => {
    const clock = fixedClock();
    const list = createRevocationList({ store: fakeStore().store, clock, retainMs: 60_000 });
    let peak = 0;
    // One revocation a second for ten minutes, syncing every 2 s as the server does.
    for (let i = 0; i < 600; i += 1) {
      clock.advance(1_000);
      list.add(`s${i}`, clock.now());
      if (i % 2 === 0) await list.sync();
      peak = Math.max(peak, list.size);
    }
    expect(peak).toBeLessThanOrEqual(63);
    expect(list.has('s0')).toBe(false);
    expect(list.has('s599')).toBe(true);
  });

  test('when the list starts, then the first sync loads only the revocations that can still matter (retain window plus the commit slack)', async () => {
    const clock = fixedClock();
    const now = clock.now();
    const fake = fakeStore([
      { sessionId: 'ancient', revokedAt: now - RETAIN - STARTUP_SLACK_MS - 1 },
      { sessionId: 'recent', revokedAt: now - RETAIN - STARTUP_SLACK_MS + 1 },
      { sessionId: 'just-now', revokedAt: now },
    ]);
    const list = createRevocationList({ store: fake.store, clock, retainMs: RETAIN });
    await list.sync();
    expect(fake.asked).toEqual([undefined]);
    expect([list.has('ancient'), list.has('recent'), list.has('just-now')]).toEqual([false, true, true]);
  });

  test('when it syncs again, then it reads on from its cursor in commit order and learns of a revocation whose transaction began long ago', async () => {
    const clock = fixedClock();
    const fake = fakeStore();
    const list = createRevocationList({ store: fake.store, clock, retainMs: RETAIN });
    await list.sync();
    clock.advance(2_000);
    fake.rows.push({ sessionId: 'elsewhere', revokedAt: clock.now() - 500 });
    await list.sync();
    // revoked_at is when the request began; this one committed 95 s later (a lock wait). A poll
    // by time would have looked back 5 s and missed it for good.
    clock.advance(95_000);
    fake.rows.push({ sessionId: 'slow-commit', revokedAt: clock.now() - 95_000 });
    await list.sync();
    expect(fake.asked).toEqual([undefined, 0, 1]);
    expect([list.has('elsewhere'), list.has('slow-commit')]).toEqual([true, true]);
    // Kept a whole retain window from when it was learned, not from its old revokedAt.
    clock.advance(RETAIN - 1);
    await list.sync();
    expect(list.has('slow-commit')).toBe(true);
  });

  test('when a sync fails, then the next one reads again from the last successful cursor, so nothing is missed', async () => {
    const clock = fixedClock();
    const t0 = clock.now();
    const fake = fakeStore();
    const list = createRevocationList({ store: fake.store, clock, retainMs: RETAIN });
    await list.sync();
    clock.advance(2_000);
    fake.failNext();
    await expect(list.sync()).rejects.toThrow('store down');
    clock.advance(2_000);
    fake.rows.push({ sessionId: 'during-outage', revokedAt: t0 + 1_000 });
    await list.sync();
    expect(fake.asked).toEqual([undefined, 0, 0]);
    expect(list.has('during-outage')).toBe(true);
  });

  test('when a sync hangs (a frozen store), then polls do not pile up behind it', async () => {
    jest.useFakeTimers();
    try {
      const clock = fixedClock();
      const fake = fakeStore();
      const list = createRevocationList({ store: fake.store, clock, retainMs: RETAIN });
      await list.sync();
      fake.hangFromNow();
      list.start(100, () => undefined);
      await jest.advanceTimersByTimeAsync(5_000);
      // One stuck poll, and explicit syncs share it rather than adding another.
      void list.sync();
      expect(fake.asked).toEqual([undefined, 0]);
      list.stop();
    } finally {
      jest.useRealTimers();
    }
  });

  test('when started, then it syncs every interval and reports failures; when stopped, then it syncs no more', async () => {
    jest.useFakeTimers();
    try {
      const clock = fixedClock();
      const fake = fakeStore();
      const errors: unknown[] = [];
      const list = createRevocationList({ store: fake.store, clock, retainMs: RETAIN });
      list.start(100, (e) => errors.push(e));
      await jest.advanceTimersByTimeAsync(250);
      expect(fake.asked).toHaveLength(2);
      fake.failNext();
      await jest.advanceTimersByTimeAsync(100);
      expect(errors).toEqual([expect.objectContaining({ message: 'store down' })]);
      list.stop();
      await jest.advanceTimersByTimeAsync(1_000);
      expect(fake.asked).toHaveLength(3);
    } finally {
      jest.useRealTimers();
    }
  });
});

describe('the revocation list over a real store', () => {
  const getUser = async (t: TestApp, access: string): Promise<Response> =>
    expectContract(await t.http().get('/user').set('Authorization', `Bearer ${access}`), 'GET', '/user');
  const logout = async (t: TestApp, access: string): Promise<Response> =>
    expectContract(await t.http().post('/logout').set('Authorization', `Bearer ${access}`), 'POST', '/logout');

  test('when a session is revoked by one app, then a second app over the same store refuses its token after sync(), and one started later refuses it at once after its start-up sync', async () => {
    const store = await openStore('sqlite::memory:');
    const clock = fixedClock(Date.now());
    const one = await makeApp({}, { store, clock });
    const two = await makeApp({}, { store, clock });
    const u = await one.makeUser({ name: 'alice' });
    const s = await one.login('alice', u.password);
    await two.app.services.revocations.sync();
    expect((await getUser(two, s.access)).status).toBe(200);

    expect((await logout(one, s.access)).status).toBe(204);
    expect((await getUser(one, s.access)).status).toBe(401);
    // Until it syncs, the second app has not heard: this is the window REVOCATION_POLL_INTERVAL bounds.
    expect((await getUser(two, s.access)).status).toBe(200);
    clock.advance(2_000);
    await two.app.services.revocations.sync();
    const refused = await getUser(two, s.access);
    expect([refused.status, refused.body.code]).toEqual([401, 'invalid_token']);

    // A restart: a fresh app rebuilds the list from the store, as server.ts does before listening.
    const three = await makeApp({}, { store, clock });
    expect(three.app.services.revocations.size).toBe(0);
    await three.app.services.revocations.sync();
    expect(three.app.services.revocations.size).toBe(1);
    expect((await getUser(three, s.access)).status).toBe(401);
    await store.close();
  });

  test("when all the user's sessions are ended (password change), then a restarted app refuses every one of their tokens", async () => {
    const store = await openStore('sqlite::memory:');
    const clock = fixedClock(Date.now());
    const one = await makeApp({}, { store, clock });
    const u = await one.makeUser({ name: 'bob' });
    const a = await one.login('bob', u.password);
    const b = await one.login('bob', u.password);
    const changed = await one
      .http()
      .put('/user/password')
      .set('Authorization', `Bearer ${a.access}`)
      .send({ current_password: u.password, new_password: 'a-brand-new-password' });
    expect(expectContract(changed, 'PUT', '/user/password').status).toBe(204);
    const restarted = await makeApp({}, { store, clock });
    await restarted.app.services.revocations.sync();
    for (const s of [a, b]) expect((await getUser(restarted, s.access)).status).toBe(401);
    await store.close();
  });

  test('when a revocation is older than the access token lifetime plus skew (and the commit slack), then a restarted app does not load it (its tokens have expired anyway)', async () => {
    const store = await openStore('sqlite::memory:');
    const clock = fixedClock(Date.now());
    const one = await makeApp({ ACCESS_TOKEN_TTL: '300', CLOCK_SKEW: '30' }, { store, clock });
    const u = await one.makeUser({ name: 'cleo' });
    const s = await one.login('cleo', u.password);
    expect((await logout(one, s.access)).status).toBe(204);
    clock.advance(330_001 + STARTUP_SLACK_MS);
    const restarted = await makeApp({ ACCESS_TOKEN_TTL: '300', CLOCK_SKEW: '30' }, { store, clock });
    await restarted.app.services.revocations.sync();
    expect(restarted.app.services.revocations.size).toBe(0);
    // Refused all the same, by its expiry.
    const res = await getUser(restarted, s.access);
    expect([res.status, res.body.detail]).toEqual([401, 'The access token has expired.']);
    await store.close();
  });
});
