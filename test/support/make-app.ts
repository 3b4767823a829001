import { Writable } from 'node:stream';
import jwt from 'jsonwebtoken';
import request from 'supertest';
import { type AuthApp, createApp } from '../../src/app';
import { type Clock, fixedClock } from '../../src/clock';
import { type Config, loadConfig } from '../../src/config';
import { createLogger } from '../../src/http/request-log';
import type { Metrics } from '../../src/services/metrics';
import { createPasswords, type Passwords } from '../../src/services/passwords';
import type { RevocationBus } from '../../src/services/revocations';
import type { KeyChangeBus } from '../../src/services/signing-keys';
import { openStore } from '../../src/store/open-store';
import type { Store } from '../../src/store/store';
import { expectContract } from './contract-check';

export const TEST_SECRET = 'test-secret-that-is-at-least-32-bytes-long!';

let sharedPasswords: Promise<Passwords> | undefined;
/** argon2 at the configured minimum; made once per test file (the dummy hash costs a hash). */
export function testPasswords(): Promise<Passwords> {
  sharedPasswords ??= createPasswords({ memoryCost: 19_456, timeCost: 2, parallelism: 1 });
  return sharedPasswords;
}

/** Every log line the app wrote, parsed. */
export interface LogCapture {
  lines: () => Record<string, unknown>[];
  text: () => string;
}

export interface TestApp {
  app: AuthApp;
  store: Store;
  config: Config;
  clock: ReturnType<typeof fixedClock>;
  logs: LogCapture;
  /** supertest against `app.callback()`: no port is opened. */
  http: () => ReturnType<typeof request>;
  /** Adds a user straight through the service. */
  makeUser(opts?: { name?: string; password?: string; role?: 'user' | 'admin' }): Promise<{ id: string; name: string; password: string; role: string }>;
  /**
   * Signs `claims` as the server does (its current key, that key's kid and algorithm) unless told
   * otherwise: for forging tokens that differ from the server's in one respect.
   */
  sign(claims: object, opts?: jwt.SignOptions): string;
  /** Logs in and returns the token pair (and the Set-Cookie header). */
  login(name: string, password: string): Promise<{ access: string; refresh: string; cookie: string }>;
  close(): Promise<void>;
}

let counter = 0;

/** A fresh app over its own in-memory SQLite store, with a fixed clock and captured logs. */
export async function makeApp(
  env: Record<string, string> = {},
  opts: { clock?: Clock; store?: Store; revocationBus?: RevocationBus; keyChangeBus?: KeyChangeBus; metrics?: Metrics } = {},
): Promise<TestApp> {
  const config = loadConfig({ NODE_ENV: 'test', JWT_SECRET: TEST_SECRET, DATABASE_URL: 'sqlite::memory:', ...env });
  const store = opts.store ?? (await openStore(config.databaseUrl));
  const clock = (opts.clock as ReturnType<typeof fixedClock>) ?? fixedClock(Date.now());
  let captured = '';
  const sink = new Writable({
    write(chunk, _enc, cb) {
      captured += chunk.toString();
      cb();
    },
  });
  const logger = createLogger(env['LOG_LEVEL'] ? config.logLevel : 'info', sink);
  const app = createApp({
    config,
    store,
    passwords: await testPasswords(),
    logger,
    clock,
    ...(opts.revocationBus ? { revocationBus: opts.revocationBus } : {}),
    ...(opts.keyChangeBus ? { keyChangeBus: opts.keyChangeBus } : {}),
    ...(opts.metrics ? { metrics: opts.metrics } : {}),
  });
  // As at start-up: the keys are loaded (the first one made) before the first request.
  await app.services.keyring.sync();
  const http = () => request(app.callback());
  return {
    app,
    store,
    config,
    clock,
    logs: {
      lines: () =>
        captured
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l) as Record<string, unknown>),
      text: () => captured,
    },
    http,
    sign(claims, o = {}) {
      const signer = app.services.keyring.signer();
      if (signer.alg === 'EdDSA') throw new TypeError('sign() signs HS256 and ES256 only (jsonwebtoken has no EdDSA)');
      return jwt.sign(claims, signer.key, { algorithm: signer.alg, keyid: signer.kid, ...o });
    },
    async makeUser(o = {}) {
      counter += 1;
      const name = o.name ?? `user${counter}`;
      const password = o.password ?? `pw-${counter}-long-enough`;
      const role = o.role ?? 'user';
      const u = await app.services.auth.addUser(name, password, role);
      return { ...u, password };
    },
    async login(name, password) {
      const res = await http().post('/login').send({ name, password });
      if (res.status !== 200) throw new Error(`login failed: ${res.status} ${res.text}`);
      expectContract(res, 'POST', '/login');
      const cookie = ([] as string[]).concat(res.headers['set-cookie'] ?? []).find((c) => c.startsWith('refresh_token=')) ?? '';
      return { access: res.body.access_token, refresh: res.body.refresh_token, cookie: cookie.split(';')[0] as string };
    },
    close: () => store.close(),
  };
}
