import { openStore } from '../../src/store/open-store';
import type { Store } from '../../src/store/store';
import { expectContract } from '../support/contract-check';
import { makeApp } from '../support/make-app';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** A store whose `method` throws, everything else untouched. */
function breaking(store: Store, method: keyof Store, error = new Error('the database is on fire')): Store {
  return new Proxy(store, {
    get: (target, prop, receiver) => (prop === method ? async () => Promise.reject(error) : Reflect.get(target, prop, receiver)),
  });
}

describe('request ids', () => {
  test('when requests are handled, then every log line carries a reqId and each response echoes its own in X-Request-Id', async () => {
    const t = await makeApp();
    const responses = [await t.http().get('/healthz'), await t.http().get('/user'), await t.http().post('/login').send({ name: 'nobody', password: 'x' })];
    const lines = t.logs.lines();
    expect(lines.length).toBeGreaterThanOrEqual(responses.length);
    for (const line of lines) expect(line['reqId']).toMatch(UUID);
    const requestLines = lines.filter((l) => l['msg'] === 'request');
    expect(requestLines.map((l) => l['reqId'])).toEqual(responses.map((r) => r.headers['x-request-id']));
    expect(new Set(requestLines.map((l) => l['reqId'])).size).toBe(responses.length);
    await t.close();
  });

  test('when the client sends a safe X-Request-Id, then it is reused in the header and the log', async () => {
    const t = await makeApp();
    const res = await t.http().get('/healthz').set('X-Request-Id', 'edge-7f3a.92_B');
    expect(res.headers['x-request-id']).toBe('edge-7f3a.92_B');
    expect(t.logs.lines().map((l) => l['reqId'])).toEqual(['edge-7f3a.92_B']);
    await t.close();
  });

  test.each([
    ['spaces', 'a b'],
    ['a path', '../../etc/passwd'],
    ['markup', '<script>x</script>'],
    ['65 characters', 'a'.repeat(65)],
    ['a JSON break-out', '","level":60,"msg":"forged'],
    ['Latin-1', 'caf\u00e9'],
  ])('when the client sends an X-Request-Id with %s, then a new UUID replaces it', async (_what, given) => {
    const t = await makeApp();
    const res = await t.http().get('/healthz').set('X-Request-Id', given);
    expect(res.headers['x-request-id']).toMatch(UUID);
    expect(t.logs.lines().map((l) => l['reqId'])).toEqual([res.headers['x-request-id']]);
    expect(t.logs.text()).not.toContain(given);
    await t.close();
  });
});

describe('secrets stay out of the logs', () => {
  test('when users log in, refresh, log out, change passwords and sign up, then no password, token, cookie or hash is logged', async () => {
    const t = await makeApp({ ALLOW_SIGNUP: 'true' });
    const secrets: string[] = [];
    const keep = (...s: (string | undefined)[]) => {
      for (const x of s) if (x) secrets.push(x);
    };
    const oldPassword = 'Old-Pw-4f9c1e7a-kept-secret';
    const newPassword = 'New-Pw-8b2d6f3c-kept-secret';
    const wrongPassword = 'Wrong-Pw-1a5e9c2b-kept-secret';
    const signupPassword = 'Signup-Pw-6c3f8a1d-kept-secret';
    keep(oldPassword, newPassword, wrongPassword, signupPassword);
    await t.makeUser({ name: 'judy', password: oldPassword });

    const cookieOf = (res: { headers: Record<string, unknown> }) =>
      ([] as string[])
        .concat((res.headers['set-cookie'] as string[]) ?? [])
        .map((c) => c.split(';')[0]?.split('=')[1])
        .find(Boolean);

    expect((await t.http().post('/login').send({ name: 'judy', password: wrongPassword })).status).toBe(401);
    const login = await t.http().post('/login').set('User-Agent', 'logging-test').send({ name: 'judy', password: oldPassword });
    expect(login.status).toBe(200);
    keep(login.body.access_token, login.body.refresh_token, cookieOf(login));

    // Refresh by cookie, then by body; then replay the first token, which ends the session.
    const byCookie = await t.http().post('/refresh').set('Cookie', `refresh_token=${login.body.refresh_token}`).send({});
    expect(byCookie.status).toBe(200);
    keep(byCookie.body.access_token, byCookie.body.refresh_token, cookieOf(byCookie));
    t.clock.advance(10_000); // past REFRESH_REUSE_INTERVAL: a replay, not a retry
    const replay = await t.http().post('/refresh').send({ refresh_token: login.body.refresh_token });
    expect(replay.status).toBe(401);

    const second = await t.http().post('/login').send({ name: 'judy', password: oldPassword });
    keep(second.body.access_token, second.body.refresh_token);
    const auth = `Bearer ${second.body.access_token as string}`;
    expect((await t.http().get('/user').set('Authorization', auth)).status).toBe(200);
    // A token in the query string (clients do that) must not reach the log through the path.
    expect(
      (
        await t
          .http()
          .get(`/user?access_token=${second.body.access_token as string}`)
          .set('Authorization', auth)
      ).status,
    ).toBe(200);
    expect(
      (
        await t
          .http()
          .get('/user')
          .set('Authorization', `Bearer ${second.body.access_token as string}x`)
      ).status,
    ).toBe(401);
    expect((await t.http().put('/user/password').set('Authorization', auth).send({ current_password: wrongPassword, new_password: newPassword })).status).toBe(
      403,
    );
    expect((await t.http().put('/user/password').set('Authorization', auth).send({ current_password: oldPassword, new_password: newPassword })).status).toBe(
      204,
    );

    const third = await t.http().post('/login').send({ name: 'judy', password: newPassword });
    keep(third.body.access_token, third.body.refresh_token);
    const logout = await t
      .http()
      .post('/logout')
      .set('Authorization', `Bearer ${third.body.access_token as string}`)
      .set('Cookie', `refresh_token=${third.body.refresh_token as string}`);
    expect(logout.status).toBe(204);

    expect((await t.http().post('/users').send({ name: 'mallory', password: signupPassword })).status).toBe(201);
    expect((await t.http().post('/users').send({ name: 'mallory', password: signupPassword })).status).toBe(409);

    const text = t.logs.text();
    const events = t.logs
      .lines()
      .map((l) => l['event'])
      .filter(Boolean);
    // The scan means something only if the flows were logged.
    expect(events).toEqual(expect.arrayContaining(['login', 'refresh_token_reused', 'password_changed', 'signup']));
    expect(t.logs.lines().filter((l) => l['msg'] === 'request')).toHaveLength(14);
    // Every line a service logged during a request carries that request's id.
    const requestIds = new Set(
      t.logs
        .lines()
        .filter((l) => l['msg'] === 'request')
        .map((l) => l['reqId']),
    );
    const eventLines = t.logs.lines().filter((l) => l['event']);
    expect(eventLines.length).toBeGreaterThanOrEqual(7);
    for (const line of eventLines) expect([line['event'], requestIds.has(line['reqId'])]).toEqual([line['event'], true]);
    expect(secrets.length).toBeGreaterThanOrEqual(13);
    for (const secret of secrets) expect(text).not.toContain(secret);
    expect(text).not.toMatch(/authorization/i);
    expect(text).not.toMatch(/cookie/i);
    expect(text).not.toContain('$argon2');
    expect(text).not.toContain('access_token');
    await t.close();
  });

  test('when logins fail, then each is a security event naming the account when known, never the name typed', async () => {
    const t = await makeApp();
    const u = await t.makeUser({ name: 'target-user' });
    await t.http().post('/login').send({ name: 'Name-Canary-typed', password: 'whatever-pass' }).expect(401);
    await t.http().post('/login').send({ name: 'target-user', password: 'not-the-password' }).expect(401);
    await t.app.services.auth.setDisabled('target-user', true);
    await t.http().post('/login').send({ name: 'target-user', password: u.password }).expect(401);
    const events = t.logs.lines().filter((l) => l['event'] === 'login_failed');
    expect(events.map((e) => [e['reason'], e['userId']])).toEqual([
      ['unknown_name', undefined],
      ['wrong_password', u.id],
      ['disabled', u.id],
    ]);
    expect(t.logs.text()).not.toContain('Name-Canary-typed');
    await t.close();
  });

  test('when a request fails with a 500, then the error is logged without the request body and the client sees no detail', async () => {
    const password = 'Crash-Pw-2e7b9d4f-kept-secret';
    const t = await makeApp({}, { store: breaking(await openStore('sqlite::memory:'), 'findUserByNameKey') });
    const res = await t.http().post('/login').set('Authorization', 'Bearer not-a-token').send({ name: 'kim', password });
    expect(res.status).toBe(500);
    expect(res.body).toEqual({ type: 'about:blank', title: 'Internal Server Error', status: 500 });
    const errors = t.logs.lines().filter((l) => l['level'] === 50);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ msg: 'request failed', path: '/login', err: { message: 'the database is on fire' } });
    expect(errors[0]?.['reqId']).toBe(res.headers['x-request-id']);
    expect(t.logs.text()).not.toContain(password);
    expect(t.logs.text()).not.toMatch(/authorization|not-a-token/i);
    await t.close();
  });
});

describe('health and readiness', () => {
  test('when the process runs and the store answers, then /healthz and /readyz say ok', async () => {
    const t = await makeApp();
    const health = expectContract(await t.http().get('/healthz'), 'GET', '/healthz');
    expect([health.status, health.body]).toEqual([200, { status: 'ok' }]);
    const ready = expectContract(await t.http().get('/readyz'), 'GET', '/readyz');
    expect([ready.status, ready.body]).toEqual([200, { status: 'ok', checks: { store: 'up' } }]);
    await t.close();
  });

  test('when the store has been closed, then /readyz answers 503 not_ready while /healthz stays 200', async () => {
    const t = await makeApp();
    await t.store.close();
    const ready = await t.http().get('/readyz');
    expectContract(ready, 'GET', '/readyz');
    expect(ready.status).toBe(503);
    expect(ready.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(ready.body).toMatchObject({ status: 503, code: 'not_ready' });
    const health = await t.http().get('/healthz');
    expectContract(health, 'GET', '/healthz');
    expect(health.status).toBe(200);
  });

  test('when the store ping throws, then /readyz answers 503 not_ready without the error', async () => {
    const t = await makeApp({}, { store: breaking(await openStore('sqlite::memory:'), 'ping', new Error('connection refused to db-secret-host')) });
    const res = await t.http().get('/readyz');
    expectContract(res, 'GET', '/readyz');
    expect(res.status).toBe(503);
    expect(res.body).toEqual({
      type: 'urn:problem-type:not_ready',
      title: 'Service Unavailable',
      status: 503,
      detail: 'The store does not answer.',
      code: 'not_ready',
      checks: { store: 'down' },
    });
    expect(res.text).not.toContain('db-secret-host');
    await t.close();
  });
});

describe('request log levels', () => {
  test('when pages, scripts and styles are served, then their request lines are at debug level, and API requests stay at info', async () => {
    const t = await makeApp({ LOG_LEVEL: 'debug' });
    await t.http().get('/login').expect(200);
    await t.http().get('/js/api.js').expect(200);
    await t.http().get('/docs/swagger-ui.css').expect(200);
    await t.http().get('/healthz').expect(200);
    await t.http().get('/no-such-page').expect(404);
    const requests = t.logs.lines().filter((l) => l['msg'] === 'request');
    // pino's levels: 20 debug, 30 info.
    expect(requests.map((l) => [l['path'], l['level']])).toEqual([
      ['/login', 20],
      ['/js/api.js', 20],
      ['/docs/swagger-ui.css', 20],
      ['/healthz', 30],
      ['/no-such-page', 30],
    ]);
    await t.close();
  });

  test('when the level is info (the default), then static files leave no request line and API requests do', async () => {
    const t = await makeApp({ LOG_LEVEL: 'info' });
    await t.http().get('/login').expect(200);
    await t.http().get('/vendor/bootstrap/css/bootstrap.min.css').expect(200);
    await t.http().get('/healthz').expect(200);
    expect(
      t.logs
        .lines()
        .filter((l) => l['msg'] === 'request')
        .map((l) => l['path']),
    ).toEqual(['/healthz']);
    await t.close();
  });
});
