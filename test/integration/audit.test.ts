import jwt from 'jsonwebtoken';
import type { Response } from 'supertest';
import { loadContract } from '../../src/http/contract';
import { AUDIT_EVENTS } from '../../src/services/audit';
import type { AuditEventRecord, Store } from '../../src/store/store';
import { expectContract } from '../support/contract-check';
import { makeApp, type TestApp } from '../support/make-app';

const DAY = 86_400_000;
const UA = 'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0';

/** A request from `address` (TRUST_PROXY is on in these apps) with a known request id and user agent. */
function from<T extends { set(name: string, value: string): T }>(req: T, address: string, requestId: string, token?: string): T {
  let r = req.set('X-Forwarded-For', address).set('X-Request-Id', requestId).set('User-Agent', UA);
  if (token !== undefined) r = r.set('Authorization', `Bearer ${token}`);
  return r;
}

const sidOf = (access: string) => String((jwt.decode(access) as jwt.JwtPayload)['sid']);

/** Every audit row, newest first, once the background writes have landed. */
async function trail(t: TestApp, query: Partial<Parameters<Store['listAudit']>[0]> = {}): Promise<AuditEventRecord[]> {
  await t.app.services.audit.idle();
  return t.store.listAudit({ limit: 1_000, ...query });
}

async function only(t: TestApp, event: string): Promise<AuditEventRecord> {
  const rows = await trail(t, { event });
  expect(rows).toHaveLength(1);
  return rows[0] as AuditEventRecord;
}

async function login(t: TestApp, name: string, password: string, address: string, requestId: string): Promise<Response> {
  return expectContract(await from(t.http().post('/login'), address, requestId).send({ name, password }), 'POST', '/login');
}

describe('the audit trail: what each event records', () => {
  test('the event names of the code and of the contract are the same', () => {
    const contract = loadContract();
    expect(contract.document['components']['schemas']['AuditEventName']['enum']).toEqual([...AUDIT_EVENTS]);
  });

  test('when a login succeeds, then login_succeeded names the user as actor and target, with address, user agent, request id and session', async () => {
    const t = await makeApp({ TRUST_PROXY: 'true' });
    const u = await t.makeUser({ name: 'alma' });
    const res = await login(t, 'alma', u.password, '203.0.113.10', 'req-login-ok');
    expect(res.status).toBe(200);
    expect(await only(t, 'login_succeeded')).toEqual({
      id: expect.any(Number),
      at: t.clock.now(),
      event: 'login_succeeded',
      actorId: u.id,
      targetId: u.id,
      targetName: 'alma',
      address: '203.0.113.10',
      userAgent: UA,
      requestId: 'req-login-ok',
      details: { session_id: sidOf(res.body.access_token) },
    });
    // The session keeps the address and user agent too.
    expect(await t.store.findSession(sidOf(res.body.access_token))).toEqual(expect.objectContaining({ address: '203.0.113.10', userAgent: UA }));
    await t.close();
  });

  test('when logins fail, then login_failed records the reason; an unknown name is not recorded, and the answer is the same 401 for all', async () => {
    const t = await makeApp({ TRUST_PROXY: 'true' });
    const u = await t.makeUser({ name: 'bert' });
    const d = await t.makeUser({ name: 'dora' });
    await t.app.services.auth.setDisabled('dora', true);
    // A password typed into the name field must not land in the trail.
    const typedName = 'Hunter2-Typed-In-The-Name';
    const answers = [
      await login(t, typedName, 'whatever-password', '198.51.100.1', 'req-unknown'),
      await login(t, 'bert', 'not-his-password', '198.51.100.2', 'req-wrong'),
      await login(t, 'dora', d.password, '198.51.100.3', 'req-disabled'),
    ];
    for (const res of answers) expect([res.status, res.body.code, res.body.detail]).toEqual([401, 'invalid_credentials', 'The name or the password is wrong.']);
    const rows = await trail(t, { event: 'login_failed' });
    const pick = (e: AuditEventRecord) => [e.requestId, e.actorId, e.targetId, e.targetName, e.address, e.details];
    expect(rows.map(pick)).toEqual([
      ['req-disabled', null, d.id, 'dora', '198.51.100.3', { reason: 'disabled' }],
      ['req-wrong', null, u.id, 'bert', '198.51.100.2', { reason: 'wrong_password' }],
      ['req-unknown', null, null, null, '198.51.100.1', { reason: 'unknown_name' }],
    ]);
    const text = JSON.stringify(await trail(t));
    for (const secret of [typedName, 'whatever-password', 'not-his-password', d.password]) expect(text).not.toContain(secret);
    await t.close();
  });

  test('when logins are limited, then login_limited is written once per address and name a minute, naming the account', async () => {
    const t = await makeApp({ TRUST_PROXY: 'true', LOGIN_RATE_NAME: '2' });
    const u = await t.makeUser({ name: 'cleo' });
    for (let i = 0; i < 2; i += 1) expect((await login(t, 'cleo', 'wrong-password-x', '192.0.2.7', `req-${i}`)).status).toBe(401);
    const limited = [];
    for (let i = 0; i < 3; i += 1) limited.push((await login(t, 'cleo', 'wrong-password-x', '192.0.2.7', `req-limited-${i}`)).status);
    expect(limited).toEqual([429, 429, 429]);
    const e = await only(t, 'login_limited');
    expect([e.actorId, e.targetId, e.targetName, e.address, e.requestId]).toEqual([null, u.id, 'cleo', '192.0.2.7', 'req-limited-0']);
    expect(e.details).toEqual({ retry_after: expect.any(Number) });
    // A minute later, a refusal is written again.
    t.clock.advance(61_000);
    expect((await login(t, 'cleo', 'wrong-password-x', '192.0.2.7', 'req-limited-later')).status).toBe(429);
    expect((await trail(t, { event: 'login_limited' })).map((r) => r.requestId)).toEqual(['req-limited-later', 'req-limited-0']);
    await t.close();
  });

  test('when logins from many addresses are limited at once, then at most 20 login_limited a minute are written in all', async () => {
    const t = await makeApp({ TRUST_PROXY: 'true', LOGIN_RATE_IP: '1' });
    const answers: number[] = [];
    for (let i = 0; i < 25; i += 1) {
      const address = `198.51.100.${i + 1}`;
      answers.push((await login(t, `nobody-${i}`, 'some-wrong-password', address, `req-${i}-a`)).status);
      answers.push((await login(t, `nobody-${i}`, 'some-wrong-password', address, `req-${i}-b`)).status);
    }
    expect(answers.filter((s) => s === 429)).toHaveLength(25);
    const rows = await trail(t, { event: 'login_limited' });
    expect(rows).toHaveLength(20);
    expect(rows.every((e) => e.targetId === null && e.targetName === null && e.details?.['known_user'] === false)).toBe(true);
    await t.close();
  });

  test('when a used refresh token comes back after the reuse interval, then refresh_token_reused names the session and its user, with no actor', async () => {
    const t = await makeApp({ TRUST_PROXY: 'true' });
    const u = await t.makeUser({ name: 'dina' });
    const first = await login(t, 'dina', u.password, '203.0.113.11', 'req-a');
    const old = first.body.refresh_token as string;
    expect((await t.http().post('/refresh').send({ refresh_token: old })).status).toBe(200);
    t.clock.advance(11_000);
    const replay = await from(t.http().post('/refresh'), '198.51.100.66', 'req-replay').send({ refresh_token: old });
    expect([replay.status, replay.body.code]).toEqual([401, 'refresh_token_reused']);
    const e = await only(t, 'refresh_token_reused');
    expect([e.actorId, e.targetId, e.targetName, e.address, e.requestId, e.details]).toEqual([
      null,
      u.id,
      'dina',
      '198.51.100.66',
      'req-replay',
      { session_id: sidOf(first.body.access_token), session_revoked: true },
    ]);
    // Replayed once more: the session had ended already; the replay is still recorded.
    const again = await from(t.http().post('/refresh'), '198.51.100.66', 'req-replay-2').send({ refresh_token: old });
    expect(again.status).toBe(401);
    expect((await trail(t, { event: 'refresh_token_reused' }))[0]?.details).toEqual({ session_id: sidOf(first.body.access_token), session_revoked: false });
    await t.close();
  });

  test('when a user logs out, ends a session, ends the others and changes the password, then each is recorded with them as actor and target', async () => {
    const t = await makeApp({ TRUST_PROXY: 'true' });
    const u = await t.makeUser({ name: 'emil' });
    const s = [];
    for (let i = 0; i < 4; i += 1) s.push((await login(t, 'emil', u.password, `203.0.113.${20 + i}`, `req-l${i}`)).body.access_token as string);
    const [a, b, c, d] = s as [string, string, string, string];

    expect((await from(t.http().post('/logout'), '203.0.113.30', 'req-logout', a)).status).toBe(204);
    const ended = await from(t.http().delete(`/sessions/${sidOf(b)}`), '203.0.113.31', 'req-end-one', c);
    expect(expectContract(ended, 'DELETE', '/sessions/x').status).toBe(204);
    const others = expectContract(await from(t.http().delete('/sessions'), '203.0.113.32', 'req-end-others', c), 'DELETE', '/sessions');
    expect([others.status, others.body]).toEqual([200, { sessions_ended: 1 }]);
    // The other session (d) is refused at once; this one (c) goes on.
    expect((await t.http().get('/user').set('Authorization', `Bearer ${d}`)).status).toBe(401);
    expect((await t.http().get('/user').set('Authorization', `Bearer ${c}`)).status).toBe(200);
    const wrong = await from(t.http().put('/user/password'), '203.0.113.33', 'req-pw-wrong', c).send({
      current_password: 'not-the-one-x',
      new_password: 'a fresh passphrase 1',
    });
    expect(wrong.status).toBe(403);
    const changed = await from(t.http().put('/user/password'), '203.0.113.34', 'req-pw', c).send({
      current_password: u.password,
      new_password: 'a fresh passphrase 2',
    });
    expect(changed.status).toBe(204);

    const rows = (await trail(t)).filter((e) => e.event !== 'login_succeeded');
    expect(rows.map((e) => [e.event, e.actorId, e.targetId, e.targetName, e.address, e.requestId, e.details])).toEqual([
      ['password_changed', u.id, u.id, 'emil', '203.0.113.34', 'req-pw', { sessions_ended: 1 }],
      ['password_change_failed', u.id, u.id, 'emil', '203.0.113.33', 'req-pw-wrong', { reason: 'wrong_password' }],
      ['other_sessions_ended', u.id, u.id, 'emil', '203.0.113.32', 'req-end-others', { sessions_ended: 1 }],
      ['session_ended', u.id, u.id, 'emil', '203.0.113.31', 'req-end-one', { session_id: sidOf(b) }],
      ['logout', u.id, u.id, 'emil', '203.0.113.30', 'req-logout', { session_id: sidOf(a) }],
    ]);
    const text = JSON.stringify(await trail(t));
    for (const secret of [u.password, 'not-the-one-x', 'a fresh passphrase 1', 'a fresh passphrase 2', a, b, c, d]) expect(text).not.toContain(secret);
    await t.close();
  });

  test('when someone signs up, then signup names the new account as actor and target', async () => {
    const t = await makeApp({ TRUST_PROXY: 'true', ALLOW_SIGNUP: 'true' });
    const res = await from(t.http().post('/users'), '203.0.113.40', 'req-signup').send({ name: 'fern', password: 'fern-long-passphrase' });
    expect(res.status).toBe(201);
    const e = await only(t, 'signup');
    expect([e.actorId, e.targetId, e.targetName, e.address, e.requestId, e.details]).toEqual([
      res.body.id,
      res.body.id,
      'fern',
      '203.0.113.40',
      'req-signup',
      null,
    ]);
    expect(JSON.stringify(await trail(t))).not.toContain('fern-long-passphrase');
    await t.close();
  });

  test('when the CLI changes accounts, then its events have no actor and say via cli', async () => {
    const t = await makeApp();
    await t.makeUser({ name: 'gus' });
    await t.app.services.auth.setDisabled('gus', true);
    await t.app.services.auth.setDisabled('gus', false);
    await t.app.services.auth.setPassword('gus', 'a cli chosen passphrase');
    await t.app.services.auth.deleteUser('gus');
    const rows = await trail(t);
    expect(rows.map((e) => [e.event, e.actorId, e.targetName, e.details?.['via']])).toEqual([
      ['user_deleted', null, 'gus', 'cli'],
      ['password_set_by_admin', null, 'gus', 'cli'],
      ['user_enabled', null, 'gus', 'cli'],
      ['user_disabled', null, 'gus', 'cli'],
    ]);
    expect(JSON.stringify(rows)).not.toContain('a cli chosen passphrase');
    await t.close();
  });

  test('when the store refuses an audit write, then the request is answered as ever and a warning is logged without the event fields', async () => {
    const base = await makeApp();
    const failing: Store = { ...base.store, recordAudit: () => Promise.reject(new Error('disk full')) };
    const t = await makeApp({}, { store: failing });
    await t.makeUser({ name: 'hal' });
    const res = await t.http().post('/login').send({ name: 'hal', password: 'not-hals-password' });
    expect([res.status, res.body.code]).toEqual([401, 'invalid_credentials']);
    await t.app.services.audit.idle();
    const warning = t.logs.lines().find((l) => l['audit'] === 'lost');
    expect(warning).toEqual(expect.objectContaining({ level: 40, event: 'login_failed', msg: 'audit event could not be written' }));
    expect(t.logs.text()).not.toContain('not-hals-password');
    await base.close();
  });
});

describe('GET /audit', () => {
  async function setUp() {
    const t = await makeApp({ TRUST_PROXY: 'true' });
    const admin = await t.makeUser({ name: 'root', role: 'admin' });
    const u = await t.makeUser({ name: 'ivy' });
    const adminToken = (await login(t, 'root', admin.password, '203.0.113.1', 'req-admin')).body.access_token as string;
    return { t, admin, u, adminToken };
  }
  const get = async (t: TestApp, url: string, token?: string) => {
    let req = t.http().get(url);
    if (token !== undefined) req = req.set('Authorization', `Bearer ${token}`);
    return expectContract(await req, 'GET', '/audit');
  };

  test('when no token, then 401; when a user, then 403', async () => {
    const { t, u } = await setUp();
    expect((await get(t, '/audit')).status).toBe(401);
    const token = (await t.login('ivy', u.password)).access;
    const res = await get(t, '/audit', token);
    expect([res.status, res.body.code]).toEqual([403, 'forbidden']);
    await t.close();
  });

  test('when filtered by user, event and time, then only those events come, newest first', async () => {
    const { t, admin, u, adminToken } = await setUp();
    const t0 = t.clock.now();
    t.clock.advance(60_000);
    await login(t, 'ivy', 'wrong-password-1', '198.51.100.9', 'req-f1');
    t.clock.advance(60_000);
    await login(t, 'ivy', u.password, '198.51.100.9', 'req-ok');
    t.clock.advance(60_000);
    await login(t, 'ivy', 'wrong-password-2', '198.51.100.9', 'req-f2');
    await t.app.services.audit.idle();

    const byUser = await get(t, `/audit?user=${u.id}`, adminToken);
    expect(byUser.status).toBe(200);
    expect(byUser.body.map((e: { request_id: string }) => e.request_id)).toEqual(['req-f2', 'req-ok', 'req-f1']);
    expect(byUser.body[0]).toEqual({
      id: expect.stringMatching(/^\d+$/),
      at: new Date(t0 + 180_000).toISOString(),
      event: 'login_failed',
      actor_id: null,
      target_id: u.id,
      target_name: 'ivy',
      address: '198.51.100.9',
      user_agent: UA,
      request_id: 'req-f2',
      details: { reason: 'wrong_password' },
    });
    const failed = await get(t, '/audit?event=login_failed', adminToken);
    expect(failed.body.map((e: { request_id: string }) => e.request_id)).toEqual(['req-f2', 'req-f1']);
    const since = new Date(t0 + 120_000).toISOString();
    const until = new Date(t0 + 180_000).toISOString();
    const window = await get(t, `/audit?since=${encodeURIComponent(since)}&until=${encodeURIComponent(until)}`, adminToken);
    expect(window.body.map((e: { request_id: string }) => e.request_id)).toEqual(['req-ok']);
    const adminOnly = await get(t, `/audit?user=${admin.id}`, adminToken);
    expect(adminOnly.body.map((e: { event: string }) => e.event)).toEqual(['login_succeeded']);
    await t.close();
  });

  test('when there are more events than the limit, then pages follow the Link header to the end, each event once', async () => {
    const { t, adminToken } = await setUp();
    for (let i = 0; i < 7; i += 1) await login(t, 'ivy', `wrong-password-${i}`, '198.51.100.9', `req-${i}`);
    await t.app.services.audit.idle();
    const seen: string[] = [];
    let url: string | undefined = '/audit?event=login_failed&limit=3';
    const sizes: number[] = [];
    for (let page = 0; url !== undefined && page < 10; page += 1) {
      const res = await get(t, url, adminToken);
      expect(res.status).toBe(200);
      sizes.push(res.body.length);
      seen.push(...res.body.map((e: { request_id: string }) => e.request_id));
      const link = res.headers['link'];
      url = link === undefined ? undefined : /^<([^>]+)>; rel="next"$/.exec(link)?.[1];
      if (link !== undefined) expect(url).toMatch(/^\/audit\?event=login_failed&limit=3&cursor=[A-Za-z0-9_-]+$/);
    }
    expect(sizes).toEqual([3, 3, 1]);
    expect(seen).toEqual(['req-6', 'req-5', 'req-4', 'req-3', 'req-2', 'req-1', 'req-0']);
    await t.close();
  });

  test.each([
    ['a limit over 200', '/audit?limit=201', '/query/limit'],
    ['a limit of 0', '/audit?limit=0', '/query/limit'],
    ['a limit that is not a number', '/audit?limit=ten', '/query/limit'],
    ['a limit given twice', '/audit?limit=1&limit=2', '/query/limit'],
    ['an unknown event', '/audit?event=coffee_made', '/query/event'],
    ['a time without an offset', '/audit?since=2026-12-01T00:00:00', '/query/since'],
    ['a cursor this server did not give', '/audit?cursor=bm90LWEtY3Vyc29y', '/query/cursor'],
    ['a user id with a slash', '/audit?user=a%2Fb', '/query/user'],
  ])('when given %s, then 400 invalid_request naming the parameter', async (_case, url, pointer) => {
    const { t, adminToken } = await setUp();
    const res = await get(t, url, adminToken);
    expect([res.status, res.body.code]).toEqual([400, 'invalid_request']);
    expect(res.body.errors.map((e: { pointer: string }) => e.pointer)).toContain(pointer);
    await t.close();
  });
});

describe('GET /user/activity', () => {
  test('when a user asks, then only the events of their own account come, with who acted, the browser and OS, and no other account', async () => {
    const t = await makeApp({ TRUST_PROXY: 'true' });
    const admin = await t.makeUser({ name: 'boss', role: 'admin' });
    const u = await t.makeUser({ name: 'jo' });
    const other = await t.makeUser({ name: 'kai' });
    await login(t, 'jo', 'wrong-password-jo', '198.51.100.50', 'req-jo-fail');
    await login(t, 'kai', 'wrong-password-kai', '198.51.100.51', 'req-kai-fail');
    await login(t, 'kai', other.password, '198.51.100.51', 'req-kai-ok');
    const bossToken = (await login(t, 'boss', admin.password, '203.0.113.2', 'req-boss')).body.access_token as string;
    await from(t.http().delete(`/users/${u.id}/sessions`), '203.0.113.2', 'req-boss-ends', bossToken);
    const joToken = (await login(t, 'jo', u.password, '198.51.100.52', 'req-jo-ok')).body.access_token as string;
    await t.app.services.audit.idle();

    const res = expectContract(await t.http().get('/user/activity').set('Authorization', `Bearer ${joToken}`), 'GET', '/user/activity');
    expect(res.status).toBe(200);
    expect(res.body).toEqual([
      {
        id: expect.any(String),
        at: expect.any(String),
        event: 'login_succeeded',
        by: 'self',
        address: '198.51.100.52',
        user_agent: UA,
        browser: 'Firefox 128.0',
        os: 'Linux',
        details: { session_id: sidOf(joToken) },
      },
      expect.objectContaining({ event: 'sessions_ended_by_admin', by: 'admin', details: { sessions_ended: 0 } }),
      expect.objectContaining({ event: 'login_failed', by: 'none', address: '198.51.100.50', details: { reason: 'wrong_password' } }),
    ]);
    // Which admin acted is not told; no field names another account.
    expect(JSON.stringify(res.body)).not.toContain(admin.id);
    expect(JSON.stringify(res.body)).not.toContain('kai');
    expect((await t.http().get('/user/activity')).status).toBe(401);
    await t.close();
  });

  test('when there are more events than the limit, then the Link header pages through them', async () => {
    const t = await makeApp({ TRUST_PROXY: 'true' });
    const u = await t.makeUser({ name: 'lou' });
    for (let i = 0; i < 3; i += 1) await login(t, 'lou', `wrong-password-${i}`, '198.51.100.60', `req-${i}`);
    const token = (await login(t, 'lou', u.password, '198.51.100.60', 'req-ok')).body.access_token as string;
    await t.app.services.audit.idle();
    const first = expectContract(await t.http().get('/user/activity?limit=2').set('Authorization', `Bearer ${token}`), 'GET', '/user/activity');
    expect(first.body.map((e: { event: string }) => e.event)).toEqual(['login_succeeded', 'login_failed']);
    const next = /^<([^>]+)>; rel="next"$/.exec(first.headers['link'] as string)?.[1] as string;
    const second = expectContract(await t.http().get(next).set('Authorization', `Bearer ${token}`), 'GET', '/user/activity');
    expect(second.body).toHaveLength(2);
    expect(second.headers['link']).toBeUndefined();
    await t.close();
  });
});

describe('AUDIT_RETENTION', () => {
  test('when events are older than the retention, then pruning deletes them and keeps the rest', async () => {
    const t = await makeApp({ AUDIT_RETENTION: '30' });
    await t.makeUser({ name: 'mo' });
    await t.http().post('/login').send({ name: 'mo', password: 'old-wrong-password' });
    await t.app.services.audit.idle();
    t.clock.advance(29 * DAY);
    await t.http().post('/login').send({ name: 'mo', password: 'new-wrong-password' });
    await t.app.services.audit.idle();
    expect(await t.app.services.audit.prune()).toBe(0);
    t.clock.advance(2 * DAY);
    expect(await t.app.services.audit.prune()).toBe(1);
    const left = await trail(t);
    expect(left.map((e) => e.at)).toEqual([t.clock.now() - 2 * DAY]);
    await t.close();
  });

  test('when started, then pruning runs by itself on its interval', async () => {
    const t = await makeApp({ AUDIT_RETENTION: '1' });
    await t.http().post('/login').send({ name: 'nobody', password: 'some-wrong-password' });
    expect(await trail(t)).toHaveLength(1);
    t.clock.advance(2 * DAY);
    t.app.services.audit.start(20);
    let left = 1;
    for (let i = 0; i < 100 && left > 0; i += 1) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      left = (await trail(t)).length;
    }
    t.app.services.audit.stop();
    expect(left).toBe(0);
    await t.close();
  });
});
