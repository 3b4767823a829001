import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { Redis } from 'ioredis';
import { createHealth } from '../../src/services/health';
import { createPasswords } from '../../src/services/passwords';
import { hashToken } from '../../src/services/tokens';
import { createUserAdmin } from '../../src/services/users';
import { openStore } from '../../src/store/open-store';
import { createRedisRevocationBus, redisOptions } from '../../src/services/redis-revocation-bus';
import type { Revocation } from '../../src/store/store';
import { tempDir } from '../support/server-process';
import { redisUp } from '../support/services';

const REDIS_URL = 'redis://127.0.0.1:6379';
const CLI_JS = path.join(__dirname, '..', '..', 'dist', 'cli', 'users.js');

async function until(check: () => boolean | Promise<boolean>, boundMs: number): Promise<number> {
  const started = Date.now();
  while (Date.now() - started < boundMs) {
    if (await check()) return Date.now() - started;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`not within ${boundMs} ms`);
}

/** The machine's Redis; each test uses a channel of its own and kills only its own connections. */
(redisUp() ? describe : describe.skip)('the Redis revocation bus', () => {
  const clients: Redis[] = [];
  afterEach(() => {
    for (const c of clients.splice(0)) c.disconnect();
  });
  /** A connection as the server makes them; `plain` ones (the test's own) queue until connected. */
  const client = (extra: object = {}, plain = false) => {
    const c = new Redis(REDIS_URL, plain ? extra : { ...redisOptions(1_000), ...extra });
    clients.push(c);
    return c;
  };

  test('when the subscriber connection is cut, then it reconnects, subscribes again, catches up from the store, and says degraded meanwhile', async () => {
    const channel = `test:bus:${randomBytes(4).toString('hex')}`;
    const health = createHealth();
    const publisher = client();
    const name = `bus-test-${randomBytes(4).toString('hex')}`;
    const subscriber = client({ autoResubscribe: false, connectionName: name });
    const bus = createRedisRevocationBus(publisher, subscriber, { channel, health, pingIntervalMs: 200 });
    const got: Revocation[] = [];
    let resubscribed = 0;
    bus.subscribe(
      (r) => got.push(r),
      () => (resubscribed += 1),
    );
    await until(() => health.get('redis')?.state === 'up', 5_000);
    const before = resubscribed;

    // Cut exactly this connection, as a Redis restart or a network blip would.
    const killer = client({}, true);
    await killer.client('KILL', 'ID', String(await connectionId(killer, name)));
    await until(() => health.get('redis')?.state === 'degraded', 2_000);
    await until(() => health.get('redis')?.state === 'up', 5_000);
    expect(resubscribed).toBe(before + 1);

    // And it hears what is published after the reconnect.
    bus.publish({ sessionId: 'after-reconnect', revokedAt: 1 });
    await until(() => got.some((r) => r.sessionId === 'after-reconnect'), 2_000);
    bus.close();
  });

  test('when the users CLI ends sessions with REDIS_URL set, then it publishes each revocation on the bus', async () => {
    const channel = 'auth:revocations';
    const sub = client({}, true);
    const heard: Revocation[] = [];
    await sub.subscribe(channel);
    sub.on('message', (_ch: string, m: string) => heard.push(JSON.parse(m) as Revocation));
    const dir = tempDir();
    const env = { PATH: process.env['PATH'] ?? '', DATA_DIR: dir, DATABASE_URL: `sqlite:${path.join(dir, 'auth.db')}`, REDIS_URL };
    // A user with a session: made through the store as the server would.
    const store = await openStore(env.DATABASE_URL);
    const admin = createUserAdmin({
      store,
      passwords: await createPasswords({ memoryCost: 19_456, timeCost: 2, parallelism: 1 }),
      clock: { now: () => Date.now() },
    });
    const user = await admin.addUser(`cli-${randomBytes(3).toString('hex')}`, 'cli-user-password', 'user');
    const sid = `s-${randomBytes(6).toString('hex')}`;
    await store.createSession(
      { id: sid, userId: user.id, createdAt: Date.now(), lastUsedAt: Date.now(), expiresAt: Date.now() + 86_400_000, userAgent: null },
      { tokenHash: hashToken(sid), parentHash: null, expiresAt: Date.now() + 3_600_000 },
    );
    await store.close();

    const code = await new Promise<number | null>((resolve) => {
      const child = spawn(process.execPath, [CLI_JS, 'disable', user.name], { env, stdio: 'ignore' });
      child.once('close', resolve);
    });
    expect(code).toBe(0);
    await until(() => heard.some((r) => r.sessionId === sid), 2_000);
    expect(heard.find((r) => r.sessionId === sid)).toEqual({ sessionId: sid, revokedAt: expect.any(Number) });
  });
});

/** The id of the connection that named itself `name` (ioredis sends CLIENT SETNAME on connect). */
async function connectionId(redis: Redis, name: string): Promise<number> {
  const list = (await redis.client('LIST')) as string;
  const line = list.split('\n').find((l) => l.includes(` name=${name} `));
  const id = Number(/^id=(\d+)/.exec(line ?? '')?.[1]);
  if (!Number.isFinite(id)) throw new Error(`no connection named ${name}`);
  return id;
}
