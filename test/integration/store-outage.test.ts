import SqliteDatabase from 'better-sqlite3';
import path from 'node:path';
import type { Response } from 'supertest';
import { guardStore, isStoreUnavailable, STORE_RETRY_AFTER_SECONDS } from '../../src/store/availability';
import { openStore } from '../../src/store/open-store';
import type { Store } from '../../src/store/store';
import { expectContract } from '../support/contract-check';
import { makeApp, type TestApp } from '../support/make-app';
import { tempDir } from '../support/server-process';

/** What pg throws when PostgreSQL refuses connections. */
function refused(): Error {
  return Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED', errno: -111, syscall: 'connect' });
}

/**
 * A store that can be switched off: while `down`, every verb fails as pg does when PostgreSQL is
 * gone; `guardStore` (as openStore applies it) turns that into `store_unavailable`.
 */
function switchable(real: Store): { store: Store; set(down: boolean): void } {
  let down = false;
  const raw = new Proxy(real, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver) as unknown;
      if (typeof value !== 'function' || prop === 'close') return value;
      return (...args: unknown[]) => (down ? Promise.reject(refused()) : (value as (...a: unknown[]) => unknown).apply(target, args));
    },
  });
  return { store: guardStore(raw), set: (d) => (down = d) };
}

function expect503(res: Response, method: string, path: string): void {
  expectContract(res, method, path);
  expect([res.status, res.body.code]).toEqual([503, 'store_unavailable']);
  expect(res.headers['retry-after']).toBe(String(STORE_RETRY_AFTER_SECONDS));
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
  // Nothing of the driver's words reaches the client.
  expect(res.text).not.toMatch(/ECONNREFUSED|5432/);
}

describe('while the store is away', () => {
  let t: TestApp;
  let sw: ReturnType<typeof switchable>;
  let session: { access: string; refresh: string; cookie: string };

  beforeEach(async () => {
    sw = switchable(await openStore('sqlite::memory:'));
    t = await makeApp({}, { store: sw.store });
    const u = await t.makeUser({ name: 'outage', password: 'outage-password' });
    session = await t.login(u.name, u.password);
    sw.set(true);
  });
  afterEach(async () => {
    sw.set(false);
    await t.close();
  });

  test('when an operation needs the store, then it answers 503 store_unavailable with Retry-After, not 500', async () => {
    const auth = { Authorization: `Bearer ${session.access}` };
    expect503(await t.http().post('/login').send({ name: 'outage', password: 'outage-password' }), 'POST', '/login');
    expect503(await t.http().post('/refresh').send({ refresh_token: session.refresh }), 'POST', '/refresh');
    expect503(await t.http().get('/sessions').set(auth), 'GET', '/sessions');
    expect503(await t.http().post('/logout').set(auth), 'POST', '/logout');
    expect503(
      await t.http().put('/user/password').set(auth).send({ current_password: 'outage-password', new_password: 'another-password-1' }),
      'PUT',
      '/user/password',
    );
    const errors = t.logs.lines().filter((l) => (l['level'] as number) >= 50);
    expect(errors).toEqual([]);
  });

  test('when a client holds a valid access token, then GET /user keeps answering 200 (it needs no store)', async () => {
    const res = expectContract(await t.http().get('/user').set('Authorization', `Bearer ${session.access}`), 'GET', '/user');
    expect([res.status, res.body.name]).toEqual([200, 'outage']);
  });

  test('when /readyz is asked, then it answers 503 naming the store, and 200 again once the store is back', async () => {
    const down = expectContract(await t.http().get('/readyz'), 'GET', '/readyz');
    expect([down.status, down.body.code, down.body.checks]).toEqual([503, 'not_ready', { store: 'down' }]);
    sw.set(false);
    const up = expectContract(await t.http().get('/readyz'), 'GET', '/readyz');
    expect([up.status, up.body.checks]).toEqual([200, { store: 'up' }]);
    // The change is logged once each way, as a dependency state.
    const states = t.logs.lines().filter((l) => l['event'] === 'dependency_state');
    expect(states.map((l) => [l['dependency'], l['state']])).toEqual([
      ['store', 'down'],
      ['store', 'up'],
    ]);
  });

  test('when the store comes back, then the same requests work again without a restart', async () => {
    sw.set(false);
    const res = expectContract(await t.http().post('/refresh').send({ refresh_token: session.refresh }), 'POST', '/refresh');
    expect(res.status).toBe(200);
  });
});

describe('readiness while shutting down', () => {
  test('when the server drains, then /readyz answers 503 at once, whatever the store says', async () => {
    const t = await makeApp();
    t.app.services.health.drain();
    const res = expectContract(await t.http().get('/readyz'), 'GET', '/readyz');
    expect([res.status, res.body.detail, res.body.checks]).toEqual([503, 'The server is shutting down.', { server: 'down' }]);
    await t.close();
  });
});

describe('SQLite locked by another writer', () => {
  test('when a write waits past SQLITE_BUSY_TIMEOUT, then the request gets 503 store_unavailable, and works once the lock is gone', async () => {
    const file = path.join(tempDir(), 'auth.db');
    const url = `sqlite:${file}`;
    const store = await openStore(url, { timeouts: { connect: 1_000, query: 1_000, statement: 1_000, sqliteBusy: 200, startup: 0 } });
    const t = await makeApp({ DATABASE_URL: url }, { store });
    const u = await t.makeUser({ name: 'locked', password: 'locked-password' });
    const { access } = await t.login(u.name, u.password);

    const other = new SqliteDatabase(file);
    other.exec('BEGIN IMMEDIATE');
    try {
      const started = Date.now();
      const res = await t.http().post('/logout').set('Authorization', `Bearer ${access}`);
      expect503(res, 'POST', '/logout');
      // It waited for the lock (busy_timeout), and not much longer.
      expect(Date.now() - started).toBeGreaterThanOrEqual(150);
      expect(Date.now() - started).toBeLessThan(3_000);
    } finally {
      other.exec('ROLLBACK');
      other.close();
    }
    expect((await t.http().post('/logout').set('Authorization', `Bearer ${access}`)).status).toBe(204);
    await t.close();
  });
});

describe('telling an outage from a fault', () => {
  test.each<[string, unknown, boolean]>([
    ['a refused connection', refused(), true],
    ['a reset connection', Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }), true],
    ["pg's pool connect timeout", new Error('timeout exceeded when trying to connect'), true],
    ["pg's query_timeout", new Error('Query read timeout'), true],
    ['a connection that died', new Error('Connection terminated unexpectedly'), true],
    ['PostgreSQL shutting down (57P01)', Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' }), true],
    ['PostgreSQL starting up (57P03)', Object.assign(new Error('the database system is starting up'), { code: '57P03' }), true],
    ['statement_timeout (57014)', Object.assign(new Error('canceling statement due to statement timeout'), { code: '57014' }), true],
    ['too many connections (53300)', Object.assign(new Error('sorry, too many clients already'), { code: '53300' }), true],
    ['SQLite busy', Object.assign(new Error('database is locked'), { code: 'SQLITE_BUSY' }), true],
    ['refused on IPv4 and IPv6 (AggregateError)', new AggregateError([refused(), refused()], ''), true],
    ['a refusal wrapped as a cause', new Error('Database migration failed', { cause: refused() }), true],
    ['a unique violation (23505)', Object.assign(new Error('duplicate key'), { code: '23505' }), false],
    ['a syntax error (42601)', Object.assign(new Error('syntax error'), { code: '42601' }), false],
    ['a SQLite constraint', Object.assign(new Error('CHECK constraint failed'), { code: 'SQLITE_CONSTRAINT_CHECK' }), false],
    ['a TypeError', new TypeError('x is undefined'), false],
    ['not an error', 'ECONNREFUSED', false],
  ])('when the driver throws %s, then it is an outage: %s', (_name, error, want) => {
    expect(isStoreUnavailable(error)).toBe(want);
  });
});
