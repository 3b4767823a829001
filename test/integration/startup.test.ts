import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { freePort, startServer, tempDir } from '../support/server-process';

const SECRET = 'a-production-secret-of-at-least-32-bytes!!';

async function login(url: string, name: string, password: string) {
  const res = await fetch(`${url}/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name, password }) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe('server start-up', () => {
  test('when the database cannot be reached, then start-up retries with backoff for STORE_STARTUP_TIMEOUT, then exits 1 naming the cause', async () => {
    // A port nothing listens on: every connect is refused, as with PostgreSQL stopped.
    const port = await freePort();
    const started = Date.now();
    const srv = await startServer(
      {
        NODE_ENV: 'production',
        JWT_SECRET: SECRET,
        DATA_DIR: tempDir(),
        DATABASE_URL: `postgres://auth:s3cret-pw@127.0.0.1:${port}/auth`,
        STORE_STARTUP_TIMEOUT: '1500',
      },
      { waitForHealth: false },
    );
    expect(await srv.exited).toBe(1);
    const took = Date.now() - started;
    expect(took).toBeGreaterThanOrEqual(1_500);
    expect(took).toBeLessThan(10_000);
    expect(srv.stderr()).toMatch(/Start-up failed: The database could not be reached within 1.5 s \(STORE_STARTUP_TIMEOUT\): .*ECONNREFUSED/);
    // It said so while waiting, more than once (the backoff), and never showed the password.
    const waits = srv
      .stdout()
      .split('\n')
      .filter((l) => l.includes('"event":"store_wait"'));
    expect(waits.length).toBeGreaterThanOrEqual(2);
    expect(srv.stdout() + srv.stderr()).not.toContain('s3cret-pw');
  });

  test('when NODE_ENV=production and JWT_SECRET is missing or short, then it refuses to start, naming the key', async () => {
    for (const secret of [undefined, 'too-short']) {
      const env: Record<string, string> = { NODE_ENV: 'production', DATA_DIR: tempDir() };
      if (secret) env['JWT_SECRET'] = secret;
      const srv = await startServer(env, { waitForHealth: false });
      expect(await srv.exited).toBe(1);
      expect(srv.stderr()).toMatch(/JWT_SECRET (is required|must be at least 32 bytes)/);
    }
  });

  test('when JWT_SECRET is unset outside production, then a secret is generated once, kept, and tokens survive a restart', async () => {
    const dataDir = tempDir();
    const env = { NODE_ENV: 'development', DATA_DIR: dataDir, ADMIN_PASSWORD: 'first-admin-password', LOG_LEVEL: 'warn' };
    const first = await startServer(env);
    const { body } = await login(first.url, 'admin', 'first-admin-password');
    expect(await first.stop()).toBe(0);
    const secretFile = path.join(dataDir, 'jwt-secret');
    expect(fs.statSync(secretFile).mode & 0o777).toBe(0o600);
    expect(fs.readFileSync(secretFile, 'utf8').trim().length).toBeGreaterThanOrEqual(43);
    expect(first.stdout().match(/JWT_SECRET is not set/g)).toHaveLength(1);

    const second = await startServer(env);
    const me = await fetch(`${second.url}/user`, { headers: { authorization: `Bearer ${body['access_token'] as string}` } });
    expect(me.status).toBe(200);
    expect(await me.json()).toMatchObject({ name: 'admin', role: 'admin' });
    expect(await second.stop()).toBe(0);
  });

  test('when ADMIN_PASSWORD is unset outside production, then one is generated, printed once, and works', async () => {
    const dataDir = tempDir();
    const env = { NODE_ENV: 'development', DATA_DIR: dataDir, JWT_SECRET: SECRET, ADMIN_NAME: 'boss', LOG_LEVEL: 'warn' };
    const first = await startServer(env);
    const match = /password: (\S+)/.exec(first.stdout());
    expect(match).not.toBeNull();
    const password = match?.[1] as string;
    expect((await login(first.url, 'boss', password)).status).toBe(200);
    expect(await first.stop()).toBe(0);

    const second = await startServer(env);
    expect(second.stdout()).not.toMatch(/password:/);
    expect((await login(second.url, 'boss', password)).status).toBe(200);
    expect(await second.stop()).toBe(0);
  });

  test('when NODE_ENV=production has no ADMIN_PASSWORD, then no admin is made and the log says how to add one', async () => {
    const srv = await startServer({ NODE_ENV: 'production', JWT_SECRET: SECRET, DATA_DIR: tempDir() });
    expect(srv.stdout()).toMatch(/npm run users -- add <name> --role admin/);
    expect(srv.stdout()).not.toMatch(/password: /);
    expect((await login(srv.url, 'admin', 'anything-at-all')).status).toBe(401);
    expect(await srv.stop()).toBe(0);
  });

  test('when the store already has users, then a later start never overwrites them', async () => {
    const dataDir = tempDir();
    const base = { NODE_ENV: 'production', JWT_SECRET: SECRET, DATA_DIR: dataDir, LOG_LEVEL: 'warn' };
    const first = await startServer({ ...base, ADMIN_PASSWORD: 'original-password' });
    expect(await first.stop()).toBe(0);
    const second = await startServer({ ...base, ADMIN_PASSWORD: 'replacement-password' });
    expect((await login(second.url, 'admin', 'original-password')).status).toBe(200);
    expect((await login(second.url, 'admin', 'replacement-password')).status).toBe(401);
    expect(await second.stop()).toBe(0);
  });

  test('when the database was migrated by a newer version, then it refuses to start with a clear message', async () => {
    const dataDir = tempDir();
    const base = { NODE_ENV: 'production', JWT_SECRET: SECRET, DATA_DIR: dataDir, LOG_LEVEL: 'warn' };
    const first = await startServer(base);
    expect(await first.stop()).toBe(0);
    const db = new Database(path.join(dataDir, 'auth.db'));
    db.prepare('insert into kysely_migration (name, timestamp) values (?, ?)').run('9999_from_the_future', new Date().toISOString());
    db.close();
    const second = await startServer(base, { waitForHealth: false });
    expect(await second.exited).toBe(1);
    expect(second.stderr()).toMatch(/migrated by a newer version.*9999_from_the_future/);
  });
});

describe('the server log on standard output', () => {
  test('when one request comes and then nothing, then its line still reaches stdout (blocks are flushed at least every 100 ms), and the rest on exit', async () => {
    const dataDir = tempDir();
    const server = await startServer({ NODE_ENV: 'development', DATA_DIR: dataDir, JWT_SECRET: SECRET, ADMIN_PASSWORD: 'first-admin-password' });
    const res = await fetch(`${server.url}/healthz`, { headers: { 'x-request-id': 'lonely-request-1' } });
    expect(res.status).toBe(200);
    // Well under the 4 KiB a block waits for: only the periodic flush can bring it out. Bounded wait.
    for (let i = 0; i < 50 && !server.stdout().includes('lonely-request-1'); i += 1) await new Promise((r) => setTimeout(r, 100));
    const line = server
      .stdout()
      .split('\n')
      .find((l) => l.includes('lonely-request-1'));
    expect(JSON.parse(line ?? '{}')).toMatchObject({ msg: 'request', reqId: 'lonely-request-1', path: '/healthz', status: 200 });
    expect(await server.stop()).toBe(0);
    expect(JSON.parse(server.stdout().trim().split('\n').at(-1) ?? '{}')).toMatchObject({ msg: 'stopped' });
  });
});
