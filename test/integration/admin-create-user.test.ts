import { expectContract } from '../support/contract-check';
import { expectProblem } from '../support/expect-problem';
import { makeApp } from '../support/make-app';

const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });

/** An admin and a user, each logged in; sign-up closed (the operation does not depend on it). */
async function setUp() {
  const t = await makeApp({ ALLOW_SIGNUP: 'false' });
  const admin = await t.makeUser({ name: 'root', role: 'admin' });
  const user = await t.makeUser({ name: 'uma' });
  const adminToken = (await t.login('root', admin.password)).access;
  const userToken = (await t.login('uma', user.password)).access;
  return { t, admin, adminToken, userToken };
}

const create = (t: Awaited<ReturnType<typeof setUp>>['t'], token: string, body: object) => t.http().post('/admin/users').set(bearer(token)).send(body);

describe('POST /admin/users: an admin creates an account', () => {
  test('when an admin creates one with a role, then 201 with the account, it logs in, and user_created names the admin', async () => {
    const { t, admin, adminToken } = await setUp();
    const res = expectContract(await create(t, adminToken, { name: 'carol', password: 'a long enough passphrase', role: 'admin' }), 'POST', '/admin/users');
    expect(res.status).toBe(201);
    expect(res.body).toEqual({ id: expect.any(String), name: 'carol', role: 'admin', disabled: false, created_at: expect.stringMatching(/^\d{4}-/) });
    await t.login('carol', 'a long enough passphrase');
    await t.app.services.audit.idle();
    const [event] = await t.store.listAudit({ event: 'user_created', limit: 10 });
    expect(event).toEqual(expect.objectContaining({ actorId: admin.id, targetId: res.body.id, targetName: 'carol', details: { role: 'admin' } }));
    // Left out, the role is user.
    const plain = expectContract(await create(t, adminToken, { name: 'dave', password: 'another long passphrase' }), 'POST', '/admin/users');
    expect([plain.status, plain.body.role]).toEqual([201, 'user']);
    await t.close();
  });

  test('when a user asks, then 403 forbidden and no account is made', async () => {
    const { t, userToken } = await setUp();
    const res = expectContract(await create(t, userToken, { name: 'mallory', password: 'a long enough passphrase' }), 'POST', '/admin/users');
    expectProblem(res, 403, 'forbidden');
    expect(await t.store.findUserByNameKey('mallory')).toBeUndefined();
    await t.close();
  });

  test('when the name is taken, then 409 name_taken', async () => {
    const { t, adminToken } = await setUp();
    const res = expectContract(await create(t, adminToken, { name: 'UMA', password: 'a long enough passphrase' }), 'POST', '/admin/users');
    expectProblem(res, 409, 'name_taken');
    await t.close();
  });

  test('when the password is weak, then 422 weak_password on the password field', async () => {
    const { t, adminToken } = await setUp();
    const res = expectContract(await create(t, adminToken, { name: 'erin', password: 'password123' }), 'POST', '/admin/users');
    expectProblem(res, 422, 'weak_password');
    expect(res.body.errors).toEqual([expect.objectContaining({ pointer: '/body/password' })]);
    await t.close();
  });

  test('when nobody is signed in, then 401', async () => {
    const { t } = await setUp();
    const res = await t.http().post('/admin/users').send({ name: 'zed', password: 'a long enough passphrase' });
    expectProblem(res, 401);
    await t.close();
  });
});
