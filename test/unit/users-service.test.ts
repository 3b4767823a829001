import { fixedClock } from '../../src/clock';
import { isAuthError } from '../../src/errors';
import { createUserAdmin } from '../../src/services/users';
import { openStore } from '../../src/store/open-store';
import type { Store } from '../../src/store/store';
import { testPasswords } from '../support/make-app';
import { hashToken } from '../../src/services/tokens';

const stores: Store[] = [];
afterEach(async () => {
  for (const store of stores.splice(0)) await store.close();
});

async function setup() {
  const store = await openStore('sqlite::memory:');
  stores.push(store);
  const clock = fixedClock(Date.UTC(2026, 0, 1));
  const told: string[] = [];
  const admin = createUserAdmin({ store, passwords: await testPasswords(), clock, revocations: { add: (id) => told.push(id) } });
  let n = 0;
  const openSession = async (userId: string) => {
    n += 1;
    const id = `session-${n}`;
    const now = clock.now();
    await store.createSession(
      { id, userId, createdAt: now, lastUsedAt: now, expiresAt: now + 3_600_000, userAgent: null },
      { tokenHash: hashToken(`hash-${n}`), parentHash: null, expiresAt: now + 3_600_000 },
    );
    return id;
  };
  return { store, clock, admin, told, openSession };
}

describe('createUserAdmin', () => {
  test.each([
    ['disabling', (a: ReturnType<typeof createUserAdmin>) => a.setDisabled('ALICE', true), 'user_disabled'],
    ['resetting the password', (a: ReturnType<typeof createUserAdmin>) => a.setPassword('ALICE', 'another-password'), 'password_reset'],
    ['deleting', (a: ReturnType<typeof createUserAdmin>) => a.deleteUser('ALICE'), 'user_deleted'],
  ])('when %s a user, then every session is revoked in the store, counted, and told to the revocation list', async (_case, act) => {
    const { store, clock, admin, told, openSession } = await setup();
    const user = await admin.addUser('alice', 'alice-password', 'user');
    const other = await admin.addUser('bob', 'bob-password', 'user');
    const sessions = [await openSession(user.id), await openSession(user.id)];
    await openSession(other.id);

    const change = await act(admin);

    expect(change).toEqual({ user, sessionsEnded: 2 });
    expect(told.sort()).toEqual(sessions);
    // What a server in another process finds when it polls: these two and no other.
    const revoked = (await store.revocationsAfter(undefined, clock.now())).revocations;
    expect(revoked.map((r) => r.sessionId).sort()).toEqual(sessions);
  });

  test('when a user is enabled, then no session is ended', async () => {
    const { admin, told, openSession } = await setup();
    const user = await admin.addUser('carol', 'carol-password', 'user');
    await admin.setDisabled('carol', true);
    await openSession(user.id);
    expect(await admin.setDisabled('carol', false)).toEqual({ user, sessionsEnded: 0 });
    expect(told).toEqual([]);
    expect((await admin.findUser('carol'))?.disabled).toBe(false);
  });

  test('when it is made without a revocation list (the CLI), then sessions are still revoked in the store', async () => {
    const { store, clock, openSession } = await setup();
    const admin = createUserAdmin({ store, passwords: await testPasswords(), clock });
    const user = await admin.addUser('dave', 'dave-password', 'user');
    const session = await openSession(user.id);
    expect((await admin.setDisabled('dave', true)).sessionsEnded).toBe(1);
    expect((await store.findSession(session))?.revokedAt).toBe(clock.now());
  });

  test.each([
    ['setPassword', (a: ReturnType<typeof createUserAdmin>) => a.setPassword('nobody', 'some-password')],
    ['setDisabled', (a: ReturnType<typeof createUserAdmin>) => a.setDisabled('nobody', true)],
    ['deleteUser', (a: ReturnType<typeof createUserAdmin>) => a.deleteUser('nobody')],
  ])('when %s names no user, then it throws user_not_found', async (_case, act) => {
    const { admin } = await setup();
    const error = await act(admin).catch((e: unknown) => e);
    expect(isAuthError(error, 'user_not_found')).toBe(true);
    expect((error as Error).message).toBe('No user is named "nobody".');
  });

  test('when the password is weak, then addUser throws weak_password and stores nothing', async () => {
    const { store, admin } = await setup();
    const error = await admin.addUser('erin', 'short', 'user').catch((e: unknown) => e);
    expect(isAuthError(error, 'weak_password')).toBe(true);
    expect(await store.countUsers()).toBe(0);
  });

  test('when a name differs only in case, then addUser throws name_taken', async () => {
    const { admin } = await setup();
    await admin.addUser('Frank', 'frank-password', 'user');
    const error = await admin.addUser('FRANK', 'frank-password', 'admin').catch((e: unknown) => e);
    expect(isAuthError(error, 'name_taken')).toBe(true);
  });
});
