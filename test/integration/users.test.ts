import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openStore } from '../../src/store/open-store';
import { expectContract } from '../support/contract-check';
import { makeApp } from '../support/make-app';

const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });

describe('POST /users (sign-up)', () => {
  test('when sign-up is off (the default), then 403 signup_disabled and no account is made', async () => {
    const t = await makeApp();
    const res = await t.http().post('/users').send({ name: 'newbie', password: 'newbie-password' });
    expectContract(res, 'POST', '/users');
    expect(res.status).toBe(403);
    expect(res.body.code).toBe('signup_disabled');
    expect(await t.store.countUsers()).toBe(0);
    const info = await t.http().get('/info');
    expectContract(info, 'GET', '/info');
    expect(info.body).toEqual({ signup_enabled: false });
    await t.close();
  });

  test('when sign-up is on, then a user account is made and can log in', async () => {
    const t = await makeApp({ ALLOW_SIGNUP: 'true' });
    const res = await t.http().post('/users').send({ name: 'Newbie', password: 'newbie-password' });
    expectContract(res, 'POST', '/users');
    expect(res.status).toBe(201);
    expect(res.body).toEqual({ id: expect.any(String), name: 'Newbie', role: 'user' });
    expect((await t.http().get('/info')).body).toEqual({ signup_enabled: true });
    await t.login('newbie', 'newbie-password');
    await t.close();
  });

  test.each([
    ['a short password', { name: 'x1', password: 'short' }, 400, '/body/password'],
    ['a name with a control character', { name: 'a\u0001b', password: 'long-enough-pw' }, 400, '/body/name'],
    ['a role it may not choose', { name: 'x2', password: 'long-enough-pw', role: 'admin' }, 400, '/body/role'],
  ])('when given %s, then it is refused naming the field', async (_case, body, status, pointer) => {
    const t = await makeApp({ ALLOW_SIGNUP: 'true' });
    const res = await t.http().post('/users').send(body);
    expectContract(res, 'POST', '/users');
    expect(res.status).toBe(status);
    expect(res.body.errors.map((e: { pointer: string }) => e.pointer)).toContain(pointer);
    expect(await t.store.countUsers()).toBe(0);
    await t.close();
  });

  test('when the password is over 1024 bytes but under 1024 characters, then 422 weak_password', async () => {
    const t = await makeApp({ ALLOW_SIGNUP: 'true' });
    const res = await t
      .http()
      .post('/users')
      .send({ name: 'emoji', password: '😀'.repeat(300) });
    expectContract(res, 'POST', '/users');
    expect(res.status).toBe(422);
    expect(res.body.code).toBe('weak_password');
    await t.close();
  });

  test('when the name exists in another case, then 409 name_taken', async () => {
    const t = await makeApp({ ALLOW_SIGNUP: 'true' });
    await t.makeUser({ name: 'Grace' });
    const res = await t.http().post('/users').send({ name: 'GRACE', password: 'another-password' });
    expectContract(res, 'POST', '/users');
    expect(res.status).toBe(409);
    expect(res.body.code).toBe('name_taken');
    await t.close();
  });

  test('when ten sign-ups of one name race, then exactly one account is made', async () => {
    // From ten addresses: one address gets only ARGON2_CLIENT_LIMIT hashes at once.
    const t = await makeApp({ ALLOW_SIGNUP: 'true', TRUST_PROXY: 'true' });
    const names = ['race', 'RACE', 'Race', 'rAce', 'raCe', 'racE', 'ＲＡＣＥ', 'race', 'RaCe', 'rACE'];
    const results = await Promise.all(
      names.map((name, i) =>
        t
          .http()
          .post('/users')
          .set('X-Forwarded-For', `198.51.100.${i + 1}`)
          .send({ name, password: 'race-password' }),
      ),
    );
    for (const res of results) expectContract(res, 'POST', '/users');
    expect(results.map((r) => r.status).sort()).toEqual([201, 409, 409, 409, 409, 409, 409, 409, 409, 409]);
    expect((await t.store.listUsers()).length).toBe(1);
    await t.close();
  });

  test.each<[string, { given: string; existing?: string; status: number; code: string; detail: string }]>([
    [
      'a Cyrillic а (mixed scripts)',
      { given: '\u0430dmin', status: 400, code: 'invalid_request', detail: 'The name must use the letters of one script, not mix Cyrillic and Latin.' },
    ],
    [
      'an accented letter (only diacritics differ)',
      { given: 'Admiń', status: 409, code: 'name_taken', detail: 'That name is too similar to an existing name.' },
    ],
    ['"rn" for "m" (confusable)', { given: 'adrnin', status: 409, code: 'name_taken', detail: 'That name is too similar to an existing name.' }],
    [
      'all-Cyrillic look-alikes (whole-script confusable)',
      { given: '\u0430\u0455\u0455', existing: 'ass', status: 409, code: 'name_taken', detail: 'That name is too similar to an existing name.' },
    ],
  ])('when the name looks like an existing one by %s, then it is refused and no account is made', async (_case, { given, existing, status, code, detail }) => {
    const t = await makeApp({ ALLOW_SIGNUP: 'true' });
    await t.makeUser({ name: existing ?? 'admin', role: 'admin' });
    const res = await t.http().post('/users').send({ name: given, password: 'look-alike-password' });
    expectContract(res, 'POST', '/users');
    expect([res.status, res.body.code, res.body.detail]).toEqual([status, code, detail]);
    if (status === 400) expect(res.body.errors).toEqual([{ pointer: '/body/name', message: expect.stringContaining('one script') }]);
    expect(await t.store.countUsers()).toBe(1);
    await t.close();
  });

  test.each([
    ['a common password', { name: 'kim', password: 'password1', message: 'is one of the most common passwords' }],
    ['a common password in capitals', { name: 'kim', password: 'ILOVEYOU1', message: 'is one of the most common passwords' }],
    ['the name itself, in other case', { name: 'kimberley-ann', password: 'Kimberley-Ann', message: 'must not be the name' }],
  ])('when the password is %s, then 422 weak_password says why against the field', async (_case, { name, password, message }) => {
    const t = await makeApp({ ALLOW_SIGNUP: 'true' });
    const res = await t.http().post('/users').send({ name, password });
    expectContract(res, 'POST', '/users');
    expect(res.status).toBe(422);
    expect(res.body.code).toBe('weak_password');
    expect(res.body.errors).toEqual([{ pointer: '/body/password', message }]);
    expect(res.body.detail).toMatch(message === 'must not be the name' ? /must not be the name/ : /one of the most common passwords/);
    expect(await t.store.countUsers()).toBe(0);
    await t.close();
  });
});

describe('PUT /user/password', () => {
  test('when the current password is right, then the new one works, the old one not, and every session ends', async () => {
    const t = await makeApp();
    const u = await t.makeUser({ name: 'heidi' });
    const first = await t.login('heidi', u.password);
    const second = await t.login('heidi', u.password);
    const res = await t.http().put('/user/password').set(bearer(first.access)).send({ current_password: u.password, new_password: 'brand-new-password' });
    expectContract(res, 'PUT', '/user/password');
    expect(res.status).toBe(204);
    expect((await t.http().post('/login').send({ name: 'heidi', password: u.password })).status).toBe(401);
    await t.login('heidi', 'brand-new-password');
    for (const token of [first.access, second.access]) {
      const me = await t.http().get('/user').set(bearer(token));
      expect(me.status).toBe(401);
    }
    await t.close();
  });

  test('when the current password is wrong, then 403 and nothing changes', async () => {
    const t = await makeApp();
    const u = await t.makeUser({ name: 'ivan' });
    const { access } = await t.login('ivan', u.password);
    const res = await t.http().put('/user/password').set(bearer(access)).send({ current_password: 'not-the-password', new_password: 'brand-new-password' });
    expectContract(res, 'PUT', '/user/password');
    expect(res.status).toBe(403);
    expect(res.body.code).toBe('invalid_current_password');
    await t.login('ivan', u.password);
    await t.close();
  });

  test('when the new password breaks the policy, then 400 or 422 and nothing changes', async () => {
    const t = await makeApp();
    const u = await t.makeUser({ name: 'judy' });
    const { access } = await t.login('judy', u.password);
    const short = await t.http().put('/user/password').set(bearer(access)).send({ current_password: u.password, new_password: 'short' });
    expectContract(short, 'PUT', '/user/password');
    expect(short.status).toBe(400);
    const long = await t
      .http()
      .put('/user/password')
      .set(bearer(access))
      .send({ current_password: u.password, new_password: 'é'.repeat(600) });
    expectContract(long, 'PUT', '/user/password');
    expect(long.status).toBe(422);
    const common = await t.http().put('/user/password').set(bearer(access)).send({ current_password: u.password, new_password: 'Sunshine1' });
    expectContract(common, 'PUT', '/user/password');
    expect([common.status, common.body.code]).toEqual([422, 'weak_password']);
    expect(common.body.errors).toEqual([{ pointer: '/body/new_password', message: 'is one of the most common passwords' }]);
    await t.login('judy', u.password);
    await t.close();
  });
});

describe('GET /users', () => {
  test('when an admin asks, then every account is listed without passwords or hashes', async () => {
    const t = await makeApp();
    const admin = await t.makeUser({ name: 'root', role: 'admin' });
    await t.makeUser({ name: 'kim' });
    const { access } = await t.login('root', admin.password);
    const res = await t.http().get('/users').set(bearer(access));
    expectContract(res, 'GET', '/users');
    expect(res.status).toBe(200);
    expect(res.body.map((u: { name: string }) => u.name).sort()).toEqual(['kim', 'root']);
    expect(res.text).not.toMatch(/argon2|password/i);
    await t.close();
  });

  test('when a user who is not an admin asks, then 403 problem', async () => {
    const t = await makeApp();
    const u = await t.makeUser({ name: 'leo' });
    const { access } = await t.login('leo', u.password);
    const res = await t.http().get('/users').set(bearer(access));
    expectContract(res, 'GET', '/users');
    expect(res.status).toBe(403);
    expect(res.body.code).toBe('forbidden');
    await t.close();
  });
});

describe('disabled users', () => {
  test('when a user is disabled, then their access token stops working at once', async () => {
    const t = await makeApp();
    const u = await t.makeUser({ name: 'mallory' });
    const { access, refresh } = await t.login('mallory', u.password);
    expect((await t.http().get('/user').set(bearer(access))).status).toBe(200);
    await t.app.services.auth.setDisabled('mallory', true);
    const res = await t.http().get('/user').set(bearer(access));
    expectContract(res, 'GET', '/user');
    expect(res.status).toBe(401);
    expect((await t.http().post('/refresh').send({ refresh_token: refresh })).status).toBe(401);
    await t.close();
  });
});

describe('secrets at rest and in logs', () => {
  test('when users sign up, log in and change passwords, then neither the database file nor the logs hold a password or hash', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'auth-users-'));
    const store = await openStore(`sqlite:${path.join(dir, 'auth.db')}`);
    const t = await makeApp({ ALLOW_SIGNUP: 'true' }, { store });
    const first = 'Plaintext-Canary-One';
    const second = 'Plaintext-Canary-Two';
    const res = await t.http().post('/users').send({ name: 'nina', password: first });
    const responses = [res.text];
    const { access } = await t.login('nina', first);
    const change = await t.http().put('/user/password').set(bearer(access)).send({ current_password: first, new_password: second });
    responses.push(change.text, (await t.http().post('/login').send({ name: 'nina', password: second })).text);
    await t.close();
    const bytes = fs
      .readdirSync(dir)
      .map((f) => fs.readFileSync(path.join(dir, f)).toString('latin1'))
      .join('');
    expect(bytes).toContain('nina');
    for (const canary of [first, second]) {
      expect(bytes).not.toContain(canary);
      expect(t.logs.text()).not.toContain(canary);
      for (const text of responses) expect(text).not.toContain(canary);
    }
    expect(t.logs.text()).not.toContain('$argon2');
    for (const text of responses) expect(text).not.toContain('$argon2');
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
