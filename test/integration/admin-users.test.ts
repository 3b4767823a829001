import type { Response } from 'supertest';
import { isAuthError } from '../../src/errors';
import { openStore } from '../../src/store/open-store';
import type { AuditEventRecord, Store } from '../../src/store/store';
import { expectContract } from '../support/contract-check';
import { makeApp, type TestApp } from '../support/make-app';
import { createTestDatabase } from '../support/postgres';
import { postgresUp } from '../support/services';

const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });

/** An admin and a user, each logged in. */
async function setUp(env: Record<string, string> = {}) {
  const t = await makeApp({ TRUST_PROXY: 'true', ...env });
  const admin = await t.makeUser({ name: 'root', role: 'admin' });
  const user = await t.makeUser({ name: 'uma' });
  const adminToken = (await t.login('root', admin.password)).access;
  const userToken = (await t.login('uma', user.password)).access;
  return { t, admin, user, adminToken, userToken };
}

async function events(t: TestApp, event: string): Promise<AuditEventRecord[]> {
  await t.app.services.audit.idle();
  return t.store.listAudit({ event, limit: 100 });
}

const status = async (t: TestApp, token: string) => (await t.http().get('/user').set(bearer(token))).status;

describe('GET /users: search and pages', () => {
  test('when asked without parameters, then every account comes as before (an array), with no Link header', async () => {
    const { t, adminToken } = await setUp();
    const res = expectContract(await t.http().get('/users').set(bearer(adminToken)), 'GET', '/users');
    expect(res.status).toBe(200);
    expect(res.body.map((u: { name: string }) => u.name)).toEqual(['root', 'uma']);
    expect(res.headers['link']).toBeUndefined();
    await t.close();
  });

  test('when q is given, then only names containing it come, case and Unicode form ignored', async () => {
    const { t, adminToken } = await setUp();
    for (const name of ['Alice', 'malik', 'bob', 'ＡＬＩstair']) await t.makeUser({ name });
    const res = expectContract(await t.http().get('/users?q=ALI').set(bearer(adminToken)), 'GET', '/users');
    expect(res.body.map((u: { name: string }) => u.name).sort()).toEqual(['Alice', 'malik', 'ＡＬＩstair']);
    const wild = expectContract(await t.http().get('/users?q=%25').set(bearer(adminToken)), 'GET', '/users');
    expect(wild.body).toEqual([]);
    await t.close();
  });

  test('when limit is less than the accounts, then the Link header pages through all of them once', async () => {
    const { t, adminToken } = await setUp();
    for (let i = 0; i < 5; i += 1) await t.makeUser({ name: `page${i}` });
    const names: string[] = [];
    let url: string | undefined = '/users?q=page&limit=2';
    const sizes: number[] = [];
    for (let i = 0; url !== undefined && i < 10; i += 1) {
      const res = expectContract(await t.http().get(url).set(bearer(adminToken)), 'GET', '/users');
      sizes.push(res.body.length);
      names.push(...res.body.map((u: { name: string }) => u.name));
      url = /^<([^>]+)>; rel="next"$/.exec(res.headers['link'] ?? '')?.[1];
    }
    expect(sizes).toEqual([2, 2, 1]);
    expect(names).toEqual(['page0', 'page1', 'page2', 'page3', 'page4']);
    const bad = expectContract(await t.http().get('/users?cursor=Zm9v').set(bearer(adminToken)), 'GET', '/users');
    expect([bad.status, bad.body.errors]).toEqual([400, [{ pointer: '/query/cursor', message: 'is not a cursor this server gave' }]]);
    await t.close();
  });
});

describe('admin operations: who may call them', () => {
  const ops: [string, 'patch' | 'delete' | 'put', (id: string) => string, object | undefined][] = [
    ['PATCH /users/{id}', 'patch', (id) => `/users/${id}`, { disabled: true }],
    ['DELETE /users/{id}', 'delete', (id) => `/users/${id}`, undefined],
    ['PUT /users/{id}/password', 'put', (id) => `/users/${id}/password`, { password: 'an admin chosen passphrase' }],
    ['DELETE /users/{id}/sessions', 'delete', (id) => `/users/${id}/sessions`, undefined],
  ];

  test.each(ops)('when %s is called without a token, then 401; by a user, then 403; for no such account, then 404', async (_name, method, url, body) => {
    const { t, admin, user, adminToken, userToken } = await setUp();
    const send = (token: string | undefined, id: string) => {
      let req = t.http()[method](url(id));
      if (token !== undefined) req = req.set(bearer(token));
      return body === undefined ? req : req.send(body);
    };
    const path = url('x').replace('/x', '/{id}');
    const check = (res: Response) => expectContract(res, method.toUpperCase(), path.replace('{id}', 'x'));
    const none = check(await send(undefined, user.id));
    expect([none.status, none.body.code]).toEqual([401, 'missing_token']);
    const asUser = check(await send(userToken, admin.id));
    expect([asUser.status, asUser.body.code]).toEqual([403, 'forbidden']);
    const missing = check(await send(adminToken, 'no-such-account'));
    expect([missing.status, missing.body.code]).toEqual([404, 'user_not_found']);
    // Nothing happened to anybody.
    expect(await status(t, adminToken)).toBe(200);
    expect(await status(t, userToken)).toBe(200);
    expect((await t.store.listUsers()).map((u) => [u.name, u.role, u.disabled])).toEqual([
      ['root', 'admin', false],
      ['uma', 'user', false],
    ]);
    await t.close();
  });

  test('when PATCH /users/{id} has an empty body or an unknown field, then 400', async () => {
    const { t, user, adminToken } = await setUp();
    for (const body of [{}, { name: 'renamed' }, { role: 'root' }]) {
      const res = expectContract(await t.http().patch(`/users/${user.id}`).set(bearer(adminToken)).send(body), 'PATCH', '/users/x');
      expect([res.status, res.body.code]).toEqual([400, 'invalid_request']);
    }
    await t.close();
  });
});

describe('PATCH /users/{id}', () => {
  test('when an admin promotes a user, then the answer shows it, the user’s tokens stop at once, and role_changed is recorded', async () => {
    const { t, admin, user, adminToken, userToken } = await setUp();
    const res = expectContract(
      await t
        .http()
        .patch(`/users/${user.id}`)
        .set(bearer(adminToken))
        .set('X-Forwarded-For', '203.0.113.9')
        .set('X-Request-Id', 'req-promote')
        .send({ role: 'admin' }),
      'PATCH',
      '/users/x',
    );
    expect([res.status, res.body]).toEqual([200, { id: user.id, name: 'uma', role: 'admin', disabled: false, created_at: expect.any(String) }]);
    expect(await status(t, userToken)).toBe(401);
    // Her next login carries the new role.
    const again = await t.login('uma', user.password);
    expect((await t.http().get('/user').set(bearer(again.access))).body.role).toBe('admin');
    const [e] = await events(t, 'role_changed');
    expect([e?.actorId, e?.targetId, e?.targetName, e?.address, e?.requestId, e?.details]).toEqual([
      admin.id,
      user.id,
      'uma',
      '203.0.113.9',
      'req-promote',
      { from: 'user', to: 'admin', sessions_ended: 1 },
    ]);
    await t.close();
  });

  test('when an admin disables a user, then her sessions end and she cannot log in; enabling lets her in again; both are recorded', async () => {
    const { t, admin, user, adminToken, userToken } = await setUp();
    const off = expectContract(await t.http().patch(`/users/${user.id}`).set(bearer(adminToken)).send({ disabled: true }), 'PATCH', '/users/x');
    expect([off.status, off.body.disabled]).toEqual([200, true]);
    expect(await status(t, userToken)).toBe(401);
    expect((await t.http().post('/login').send({ name: 'uma', password: user.password })).status).toBe(401);
    const on = expectContract(await t.http().patch(`/users/${user.id}`).set(bearer(adminToken)).send({ disabled: false }), 'PATCH', '/users/x');
    expect([on.status, on.body.disabled]).toEqual([200, false]);
    await t.login('uma', user.password);
    expect((await events(t, 'user_disabled')).map((e) => [e.actorId, e.targetId, e.details])).toEqual([[admin.id, user.id, { sessions_ended: 1 }]]);
    expect((await events(t, 'user_enabled')).map((e) => [e.actorId, e.targetId, e.details])).toEqual([[admin.id, user.id, { sessions_ended: 0 }]]);
    await t.close();
  });

  test('when the change changes nothing, then no session ends and nothing is recorded', async () => {
    const { t, user, adminToken, userToken } = await setUp();
    const res = expectContract(await t.http().patch(`/users/${user.id}`).set(bearer(adminToken)).send({ role: 'user', disabled: false }), 'PATCH', '/users/x');
    expect(res.status).toBe(200);
    expect(await status(t, userToken)).toBe(200);
    expect(await events(t, 'role_changed')).toEqual([]);
    await t.close();
  });
});

describe('PUT /users/{id}/password', () => {
  test('when an admin sets a weak password, then 422 and nothing changes', async () => {
    const { t, user, adminToken, userToken } = await setUp();
    const res = expectContract(
      await t.http().put(`/users/${user.id}/password`).set(bearer(adminToken)).send({ password: 'password1' }),
      'PUT',
      '/users/x/password',
    );
    expect([res.status, res.body.code, res.body.errors]).toEqual([
      422,
      'weak_password',
      [{ pointer: '/body/password', message: 'is one of the most common passwords' }],
    ]);
    expect(await status(t, userToken)).toBe(200);
    await t.login('uma', user.password);
    await t.close();
  });

  test('when an admin sets a password, then the old one and every session stop, the new one works, and the trail has the event but not the password', async () => {
    const { t, admin, user, adminToken, userToken } = await setUp();
    const res = expectContract(
      await t.http().put(`/users/${user.id}/password`).set(bearer(adminToken)).send({ password: 'an admin chosen passphrase' }),
      'PUT',
      '/users/x/password',
    );
    expect(res.status).toBe(204);
    expect(await status(t, userToken)).toBe(401);
    expect((await t.http().post('/login').send({ name: 'uma', password: user.password })).status).toBe(401);
    await t.login('uma', 'an admin chosen passphrase');
    expect((await events(t, 'password_set_by_admin')).map((e) => [e.actorId, e.targetId, e.details])).toEqual([[admin.id, user.id, { sessions_ended: 1 }]]);
    const all = JSON.stringify(await t.store.listAudit({ limit: 1_000 }));
    for (const secret of ['an admin chosen passphrase', user.password, admin.password, userToken, adminToken]) expect(all).not.toContain(secret);
    await t.close();
  });
});

describe('DELETE /users/{id}/sessions', () => {
  test('when an admin ends a user’s sessions, then each is refused at once here, and by another instance once it reads the revocation log', async () => {
    const { t, admin, user, adminToken, userToken } = await setUp();
    const second = (await t.login('uma', user.password)).access;
    // Another instance over the same store, which has accepted the tokens before.
    const other = await makeApp({}, { store: t.store });
    await other.app.services.revocations.sync();
    expect((await other.http().get('/user').set(bearer(userToken))).status).toBe(200);

    const res = expectContract(await t.http().delete(`/users/${user.id}/sessions`).set(bearer(adminToken)), 'DELETE', '/users/x/sessions');
    expect([res.status, res.body]).toEqual([200, { sessions_ended: 2 }]);
    expect(await status(t, userToken)).toBe(401);
    expect(await status(t, second)).toBe(401);
    await other.app.services.revocations.sync();
    expect((await other.http().get('/user').set(bearer(userToken))).status).toBe(401);
    // The admin's own session is untouched; the user may log in again.
    expect(await status(t, adminToken)).toBe(200);
    await t.login('uma', user.password);
    expect((await events(t, 'sessions_ended_by_admin')).map((e) => [e.actorId, e.targetId, e.targetName, e.details])).toEqual([
      [admin.id, user.id, 'uma', { sessions_ended: 2 }],
    ]);
    await t.close();
  });
});

describe('DELETE /users/{id}', () => {
  test('when an admin deletes a user, then her token stops, she cannot log in, the trail keeps her name, and a second delete is 404', async () => {
    const { t, admin, user, adminToken, userToken } = await setUp();
    const res = expectContract(await t.http().delete(`/users/${user.id}`).set(bearer(adminToken)), 'DELETE', '/users/x');
    expect(res.status).toBe(204);
    expect(await status(t, userToken)).toBe(401);
    expect((await t.http().post('/login').send({ name: 'uma', password: user.password })).status).toBe(401);
    expect(await t.store.findUserById(user.id)).toBeUndefined();
    expect((await events(t, 'user_deleted')).map((e) => [e.actorId, e.targetId, e.targetName, e.details])).toEqual([
      [admin.id, user.id, 'uma', { sessions_ended: 1 }],
    ]);
    const again = expectContract(await t.http().delete(`/users/${user.id}`).set(bearer(adminToken)), 'DELETE', '/users/x');
    expect([again.status, again.body.code]).toEqual([404, 'user_not_found']);
    await t.close();
  });
});

describe('the last admin', () => {
  test.each([
    ['demote', 'patch', '', { role: 'user' }],
    ['disable', 'patch', '', { disabled: true }],
    ['delete', 'delete', '', undefined],
  ] as const)('when the only enabled admin would %s themself, then 409 last_admin and nothing changes', async (_case, method, suffix, body) => {
    const { t, admin, adminToken } = await setUp();
    // A disabled admin does not count.
    const off = await t.makeUser({ name: 'sleeper', role: 'admin' });
    await t.app.services.auth.setDisabled(off.name, true);
    const req = t.http()[method](`/users/${admin.id}${suffix}`).set(bearer(adminToken));
    const res = expectContract(await (body === undefined ? req : req.send(body)), method.toUpperCase(), '/users/x');
    expect([res.status, res.body.code]).toEqual([409, 'last_admin']);
    expect(await t.store.findUserById(admin.id)).toEqual(expect.objectContaining({ role: 'admin', disabled: false }));
    expect(await status(t, adminToken)).toBe(200);
    await t.close();
  });

  test('when there is another enabled admin, then an admin may demote themself (and their session ends)', async () => {
    const { t, admin, adminToken } = await setUp();
    await t.makeUser({ name: 'deputy', role: 'admin' });
    const res = expectContract(await t.http().patch(`/users/${admin.id}`).set(bearer(adminToken)).send({ role: 'user' }), 'PATCH', '/users/x');
    expect([res.status, res.body.role]).toEqual([200, 'user']);
    expect(await status(t, adminToken)).toBe(401);
    await t.close();
  });
});

/**
 * Two enabled admins, and no other: each round takes two fresh accounts and demotes every other
 * admin (straight in the store, unguarded), so the rounds do not depend on each other.
 */
async function onlyTwoAdmins(t: TestApp, round: number) {
  const a = await t.makeUser({ name: `race-a-${round}`, role: 'admin' });
  const b = await t.makeUser({ name: `race-b-${round}`, role: 'admin' });
  for (const u of await t.store.listUsers()) if (u.role === 'admin' && u.id !== a.id && u.id !== b.id) await t.store.setRole(u.id, 'user', t.clock.now());
  return { a, b };
}

const enabledAdmins = async (store: Store) => (await store.listUsers()).filter((u) => u.role === 'admin' && !u.disabled);

function lastAdminRaces(backend: string, open: () => Promise<{ t: TestApp; done: () => Promise<void> }>) {
  describe(`the last admin under concurrent changes (${backend})`, () => {
    let t: TestApp;
    let done: () => Promise<void>;
    beforeAll(async () => {
      ({ t, done } = await open());
    });
    afterAll(async () => {
      await done();
    });

    test('when two admins take away each other (demote and delete, demote and disable) at once, then exactly one change is made, every round', async () => {
      const meta = { actorId: null, address: '127.0.0.1' };
      const changes = [
        (id: string) => t.app.services.auth.changeAccount(id, { role: 'user' }, meta),
        (id: string) => t.app.services.auth.changeAccount(id, { disabled: true }, meta),
        (id: string) => t.app.services.auth.deleteUserById(id, meta),
      ];
      for (let round = 0; round < 12; round += 1) {
        const { a, b } = await onlyTwoAdmins(t, round);
        const first = changes[round % 3] as (id: string) => Promise<unknown>;
        const second = changes[(round + 1) % 3] as (id: string) => Promise<unknown>;
        const results = await Promise.allSettled([first(a.id), second(b.id)]);
        const fulfilled = results.filter((r) => r.status === 'fulfilled');
        const refused = results.filter((r) => r.status === 'rejected' && isAuthError(r.reason, 'last_admin'));
        expect([round, fulfilled.length, refused.length]).toEqual([round, 1, 1]);
        expect(await enabledAdmins(t.store)).toHaveLength(1);
      }
    });

    test('when two admins demote each other over HTTP at once, then exactly one succeeds and one enabled admin is left', async () => {
      for (let round = 100; round < 104; round += 1) {
        const { a, b } = await onlyTwoAdmins(t, round);
        const ta = (await t.login(a.name, a.password)).access;
        const tb = (await t.login(b.name, b.password)).access;
        const [ra, rb] = await Promise.all([
          t.http().patch(`/users/${b.id}`).set(bearer(ta)).send({ role: 'user' }),
          t.http().patch(`/users/${a.id}`).set(bearer(tb)).send({ disabled: true }),
        ]);
        for (const res of [ra, rb]) expectContract(res, 'PATCH', '/users/x');
        const statuses = [ra.status, rb.status];
        // The loser is refused by the store (409), or, when the winner's revocation of its
        // session came first, by the token check (401).
        expect(statuses.filter((s) => s === 200)).toHaveLength(1);
        expect(statuses.filter((s) => s === 409 || s === 401)).toHaveLength(1);
        expect(await enabledAdmins(t.store)).toHaveLength(1);
      }
    });
  });
}

lastAdminRaces('SQLite', async () => {
  const t = await makeApp({ TRUST_PROXY: 'true' });
  return { t, done: () => t.close() };
});

if (postgresUp()) {
  lastAdminRaces('PostgreSQL', async () => {
    const { url, drop } = await createTestDatabase();
    const store = await openStore(url);
    const t = await makeApp({ TRUST_PROXY: 'true' }, { store });
    return {
      t,
      done: async () => {
        await store.close();
        await drop();
      },
    };
  });
} else {
  describe.skip('the last admin under concurrent changes (PostgreSQL)', () => {
    test('skipped: PostgreSQL is not reachable', () => undefined);
  });
}
