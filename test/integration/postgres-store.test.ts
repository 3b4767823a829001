import { createHash } from 'node:crypto';
import jwt from 'jsonwebtoken';
import pg from 'pg';
import type { Response } from 'supertest';
import { fixedClock } from '../../src/clock';
import { hashToken } from '../../src/services/tokens';
import { REVOCATION_LOG_LOCK } from '../../src/store/kysely-store';
import { openStore } from '../../src/store/open-store';
import type { Store } from '../../src/store/store';
import { expectContract } from '../support/contract-check';
import { makeApp, type TestApp } from '../support/make-app';
import { createTestDatabase } from '../support/postgres';
import { postgresUp } from '../support/services';

const describePg = postgresUp() ? describe : describe.skip;

describePg('the store over PostgreSQL', () => {
  let database: string;
  let drop: () => Promise<void>;
  let url: string;
  let store: Store;
  /** A raw connection to the test database, to look at rows as an operator would. */
  let raw: pg.Client;
  let counter = 0;

  beforeAll(async () => {
    ({ url, drop } = await createTestDatabase());
    database = new URL(url).pathname.slice(1);
    store = await openStore(url);
    raw = new pg.Client({ connectionString: url });
    await raw.connect();
  });

  afterAll(async () => {
    await raw?.end();
    await store?.close();
    await drop();
  });

  /** An app over the shared PostgreSQL store; not closed per test, the store is closed once. */
  const app = (env: Record<string, string> = {}, clock = fixedClock(Date.now())) => makeApp(env, { store, clock });
  const freshUser = async (t: TestApp) => {
    counter += 1;
    return t.makeUser({ name: `pg-user-${counter}` });
  };
  const refresh = async (t: TestApp, token: string): Promise<Response> =>
    expectContract(await t.http().post('/refresh').send({ refresh_token: token }), 'POST', '/refresh');
  const getUser = async (t: TestApp, access: string): Promise<Response> =>
    expectContract(await t.http().get('/user').set('Authorization', `Bearer ${access}`), 'GET', '/user');

  test('when opened on an empty database, then the schema is migrated and the timestamps come back as numbers', async () => {
    const t = await app();
    const u = await freshUser(t);
    const s = await t.login(u.name, u.password);
    const sid = (jwt.decode(s.access) as jwt.JwtPayload)['sid'];
    const session = await store.findSession(sid);
    expect(session).toEqual({
      id: sid,
      userId: u.id,
      createdAt: t.clock.now(),
      lastUsedAt: t.clock.now(),
      expiresAt: t.clock.now() + t.config.sessionMaxAge * 1000,
      userAgent: null,
      address: expect.any(String),
      revokedAt: null,
    });
    const tables = await raw.query("select table_name from information_schema.tables where table_schema = 'public' order by table_name");
    expect(tables.rows.map((r) => r.table_name)).toEqual(expect.arrayContaining(['audit_events', 'refresh_tokens', 'sessions', 'users']));
    // The login's event, with numbers as numbers and the details as they were written.
    const [event] = await store.listAudit({ event: 'login_succeeded', userId: u.id, limit: 1 });
    expect(event).toEqual(expect.objectContaining({ id: expect.any(Number), at: t.clock.now(), targetId: u.id, details: { session_id: sid } }));
  });

  test('when a user logs in, then PostgreSQL holds the refresh token only as its SHA-256', async () => {
    const t = await app();
    const u = await freshUser(t);
    const s = await t.login(u.name, u.password);
    const sid = (jwt.decode(s.access) as jwt.JwtPayload)['sid'];
    const rows = await raw.query('select * from refresh_tokens where session_id = $1', [sid]);
    expect(rows.rows.map((r) => r.token_hash)).toEqual([createHash('sha256').update(s.refresh).digest('hex')]);
    expect(hashToken(s.refresh)).toBe(rows.rows[0].token_hash);
    expect(JSON.stringify(rows.rows)).not.toContain(s.refresh);
  });

  test('when refreshes with the same token race on separate connections, then all succeed with the one new refresh token, and the session goes on', async () => {
    const t = await app();
    const u = await freshUser(t);
    let { refresh: token } = await t.login(u.name, u.password);
    for (let round = 0; round < 10; round += 1) {
      // The losers wait for the winner's row lock, then read what it committed.
      const results = await Promise.all(Array.from({ length: 4 }, () => refresh(t, token)));
      expect([round, results.map((r) => r.status)]).toEqual([round, [200, 200, 200, 200]]);
      const tokens = new Set(results.map((r) => r.body.refresh_token as string));
      expect([round, tokens.size]).toEqual([round, 1]);
      token = [...tokens][0] as string;
      for (const r of results) expect((await getUser(t, r.body.access_token)).status).toBe(200);
      t.clock.advance(1_000);
    }
    expect((await refresh(t, token)).status).toBe(200);
    expect(t.logs.lines().filter((l) => l['event'] === 'refresh_token_reused')).toEqual([]);
  });

  test('when eight rotations of the same token run at once on separate connections, then exactly one rotates', async () => {
    const t = await app();
    const u = await freshUser(t);
    const s = await t.login(u.name, u.password);
    const now = t.clock.now();
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        store.rotateRefreshToken(hashToken(s.refresh), { tokenHash: hashToken(`next-${i}-${s.refresh}`), parentHash: null, expiresAt: now + 60_000 }, now),
      ),
    );
    expect(results.filter((r) => r.outcome === 'rotated')).toHaveLength(1);
    expect(results.filter((r) => r.outcome === 'reused')).toHaveLength(7);
    const sid = (jwt.decode(s.access) as jwt.JwtPayload)['sid'];
    const rows = await raw.query('select count(*)::int as n from refresh_tokens where session_id = $1', [sid]);
    expect(rows.rows[0].n).toBe(2);
  });

  test('when a used refresh token is replayed after the reuse interval, then the family is revoked, on this app at once and on another after sync()', async () => {
    const clock = fixedClock(Date.now());
    const t = await app({}, clock);
    const other = await app({}, clock);
    const u = await freshUser(t);
    const s = await t.login(u.name, u.password);
    const rotated = await refresh(t, s.refresh);
    expect(rotated.status).toBe(200);
    clock.advance(10_000);
    const replay = await refresh(t, s.refresh);
    expect([replay.status, replay.body.code]).toEqual([401, 'refresh_token_reused']);
    expect((await refresh(t, rotated.body.refresh_token)).body.code).toBe('invalid_refresh_token');
    expect((await getUser(t, rotated.body.access_token)).status).toBe(401);
    await other.app.services.revocations.sync();
    expect((await getUser(other, rotated.body.access_token)).status).toBe(401);
  });

  test('when a session is revoked while a refresh of it is in flight, then the refresh fails instead of issuing tokens for the revoked session', async () => {
    const t = await app();
    const u = await freshUser(t);
    const s = await t.login(u.name, u.password);
    const sid = (jwt.decode(s.access) as jwt.JwtPayload)['sid'];
    // A logout elsewhere has revoked the session but not yet committed: it holds the row lock.
    const logout = new pg.Client({ connectionString: url });
    await logout.connect();
    try {
      await logout.query('begin');
      await logout.query("update sessions set revoked_at = $1, revoke_reason = 'logout' where id = $2", [t.clock.now(), sid]);
      const now = t.clock.now();
      const rotation = store.rotateRefreshToken(
        hashToken(s.refresh),
        { tokenHash: hashToken(`next-${s.refresh}`), parentHash: null, expiresAt: now + 60_000 },
        now,
      );
      // Let the rotation read the session (still active to it) and block on the row.
      await waitForLockWait(sid);
      await logout.query('commit');
      const result = await rotation;
      expect(result.outcome).toBe('invalid');
    } finally {
      await logout.end();
    }
  });

  test('when a revocation commits after a later one was read, then the next poll still finds it (the log follows commit order)', async () => {
    const t = await app();
    const u = await freshUser(t);
    const x = await t.login(u.name, u.password);
    const y = await t.login(u.name, u.password);
    const [sx, sy] = [x, y].map((s) => (jwt.decode(s.access) as jwt.JwtPayload)['sid'] as string) as [string, string];
    let batch = await store.revocationsAfter(undefined, 0);
    // A slow revocation of X: numbered (its row inserted) first, committed last. It follows the
    // store's protocol: the log lock, then the insert.
    const slow = new pg.Client({ connectionString: url });
    await slow.connect();
    try {
      await slow.query('begin');
      await slow.query(`select pg_advisory_xact_lock(${REVOCATION_LOG_LOCK})`);
      await slow.query('insert into revocations (session_id, revoked_at) values ($1, $2)', [sx, t.clock.now()]);
      // Y is revoked meanwhile; its commit must wait for X's, or a poll now would read Y, move
      // past X's number, and never see X.
      const revokeY = store.revokeSession(sy, 'logout', t.clock.now());
      await waitForLockWait(sy);
      batch = await store.revocationsAfter(batch.cursor, 0);
      expect(batch.revocations).toEqual([]);
      await slow.query('commit');
      expect(await revokeY).toBe(true);
    } finally {
      await slow.end();
    }
    batch = await store.revocationsAfter(batch.cursor, 0);
    expect(batch.revocations.map((r) => r.sessionId)).toEqual([sx, sy]);
  });

  /** Waits (bounded) until some backend is blocked on a lock, so the interleaving is the one meant. */
  async function waitForLockWait(sid: string): Promise<void> {
    for (let i = 0; i < 100; i += 1) {
      const r = await raw.query("select count(*)::int as n from pg_stat_activity where datname = $1 and wait_event_type = 'Lock'", [database]);
      if (r.rows[0].n > 0) return;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    throw new Error(`no backend waited on the lock of session ${sid} within 2 s`);
  }

  test('when the password changes, then every session of the user ends and the revocation log reports them', async () => {
    const t = await app();
    const u = await freshUser(t);
    const a = await t.login(u.name, u.password);
    const b = await t.login(u.name, u.password);
    const before = t.clock.now();
    const res = await t
      .http()
      .put('/user/password')
      .set('Authorization', `Bearer ${a.access}`)
      .send({ current_password: u.password, new_password: 'another-long-password' });
    expect(expectContract(res, 'PUT', '/user/password').status).toBe(204);
    const sids = [a, b].map((s) => (jwt.decode(s.access) as jwt.JwtPayload)['sid']);
    const revoked = (await store.revocationsAfter(undefined, before)).revocations.map((r) => r.sessionId);
    expect(revoked).toEqual(expect.arrayContaining(sids));
    for (const s of [a, b]) {
      expect((await getUser(t, s.access)).status).toBe(401);
      expect((await refresh(t, s.refresh)).body.code).toBe('invalid_refresh_token');
    }
  });
});
