import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import jwt from 'jsonwebtoken';
import { parseKeysArgs } from '../../src/cli/keys';
import { openStore } from '../../src/store/open-store';
import { expectContract } from '../support/contract-check';
import { makeApp, TEST_SECRET, type TestApp } from '../support/make-app';
import { startServer, tempDir } from '../support/server-process';

// `npm test` builds dist/ before jest runs; in a lone run, `npm run build` first.
const CLI_JS = path.join(__dirname, '..', '..', 'dist', 'cli', 'keys.js');

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runCli(dir: string, args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI_JS, ...args], {
      cwd: dir,
      env: {
        PATH: process.env['PATH'] ?? '',
        NODE_ENV: 'test',
        DATA_DIR: dir,
        DATABASE_URL: `sqlite:${path.join(dir, 'auth.db')}`,
        JWT_SECRET: TEST_SECRET,
        JWT_ALGORITHM: 'ES256',
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`keys ${args.join(' ')} did not exit within 20 s\n${stderr}`));
    }, 20_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

async function setup(): Promise<{ dir: string; t: TestApp; run: (args: string[], env?: Record<string, string>) => Promise<CliResult> }> {
  const dir = tempDir('auth-keys-cli-');
  const store = await openStore(`sqlite:${path.join(dir, 'auth.db')}`);
  // The server's keys: the app makes the first one, as at start-up.
  const t = await makeApp({ JWT_ALGORITHM: 'ES256' }, { store });
  cleanups.push(async () => {
    await t.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return { dir, t, run: (args, env) => runCli(dir, args, env) };
}

describe('parseKeysArgs', () => {
  test.each<[string, string[], unknown]>([
    ['list', ['list'], { command: 'list', json: false }],
    ['list --json', ['list', '--json'], { command: 'list', json: true }],
    ['rotate --now', ['rotate', '--now'], { command: 'rotate', now: true }],
    ['retire KID', ['retire', 'abc'], { command: 'retire', kid: 'abc' }],
    ['remove KID --force', ['remove', 'abc', '--force'], { command: 'remove', kid: 'abc', force: true }],
    ['remove without KID', ['remove'], 'remove needs a KID (see: npm run keys -- list).'],
    ['an option of another command', ['rotate', '--force'], 'Unknown option --force for rotate.'],
    ['an unknown command', ['shred'], 'Unknown command "shred".'],
  ])('when given %s, then %j', (_name, argv, want) => {
    expect(parseKeysArgs(argv)).toEqual(want);
  });
});

describe('npm run keys', () => {
  test('when rotate runs, then the running server publishes the next key after its sync, and its tokens carry the new kid once the lead passes', async () => {
    const { t, run } = await setup();
    const first = t.app.services.keyring.signer().kid;
    const listed = await run(['list', '--json']);
    expect(listed.code).toBe(0);
    expect(JSON.parse(listed.stdout)).toEqual([expect.objectContaining({ kid: first, alg: 'ES256', state: 'current' })]);

    const rotated = await run(['rotate'], { JWT_KEY_PUBLISH_LEAD: '600' });
    expect([rotated.code, rotated.stderr]).toEqual([0, '']);
    const next = /Made key (\S+) \(ES256\)/.exec(rotated.stdout)?.[1];
    expect(next).toBeDefined();
    // The server learns at its next sync (the poll; Redis makes it at once). The CLI ran on the
    // real clock: the app's fixed clock is brought to it.
    t.clock.set(Date.now());
    await t.app.services.keyring.sync();
    const jwks = expectContract(await t.http().get('/.well-known/jwks.json'), 'GET', '/.well-known/jwks.json');
    expect(jwks.body.keys.map((k: { kid: string }) => k.kid).sort()).toEqual([first, next].sort());
    expect(t.app.services.keyring.signer().kid).toBe(first);
    t.clock.advance(601_000);
    const u = await t.makeUser({ name: 'carol' });
    const { access } = await t.login('carol', u.password);
    expect(jwt.decode(access, { complete: true })?.header.kid).toBe(next);
  });

  test('when remove is asked for the current key, then it is refused (exit 1) and the key stays; retire of the only signer is refused too', async () => {
    const { t, run } = await setup();
    const first = t.app.services.keyring.signer().kid;
    const removed = await run(['remove', first]);
    expect(removed.code).toBe(1);
    expect(removed.stderr).toMatch(/is not removed: it is the current key\. Add --force/);
    const retired = await run(['retire', first]);
    expect(retired.code).toBe(1);
    expect(retired.stderr).toMatch(/only one that signs/);
    expect((await t.store.listSigningKeys()).map((k) => k.kid)).toEqual([first]);
  });

  test('when rotate --now and then remove --force of the old key run, then tokens of the old key are refused by the server after its sync', async () => {
    const { t, run } = await setup();
    const first = t.app.services.keyring.signer().kid;
    const u = await t.makeUser({ name: 'dave' });
    const { access } = await t.login('dave', u.password);
    expect((await run(['rotate', '--now'])).code).toBe(0);
    const refused = await run(['remove', first]);
    expect([refused.code, /may be valid until/.test(refused.stderr)]).toEqual([1, true]);
    expect((await run(['remove', first, '--force'])).code).toBe(0);
    t.clock.set(Date.now());
    await t.app.services.keyring.sync();
    const res = await t.http().get('/user').set('Authorization', `Bearer ${access}`);
    expect(res.status).toBe(401);
  });

  test('when the JWT_SECRET differs from the one the keys were stored under, then rotate fails saying so, and writes nothing', async () => {
    const { t, run } = await setup();
    const res = await run(['rotate'], { JWT_SECRET: 'another-secret-that-is-at-least-32-bytes-long' });
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/cannot be decrypted: JWT_SECRET is not the one it was stored under/);
    expect(await t.store.listSigningKeys()).toHaveLength(1);
  });

  test('when production runs without JWT_SECRET, then the CLI refuses, naming it', async () => {
    const { run } = await setup();
    const res = await run(['rotate'], { NODE_ENV: 'production', JWT_SECRET: '' });
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/JWT_SECRET is required when NODE_ENV=production/);
  });
});

describe('server start-up with stored keys', () => {
  test('when the server starts with another JWT_SECRET than its keys were stored under, then it exits 1 saying so; with the right one it starts', async () => {
    const { dir, t } = await setup();
    const env = { NODE_ENV: 'production', DATA_DIR: dir, DATABASE_URL: `sqlite:${path.join(dir, 'auth.db')}`, JWT_ALGORITHM: 'ES256', LOG_LEVEL: 'warn' };
    const wrong = await startServer({ ...env, JWT_SECRET: 'another-production-secret-of-32-bytes-or-more' }, { waitForHealth: false });
    expect(await wrong.exited).toBe(1);
    expect(wrong.stderr()).toMatch(/Start-up failed: .*cannot be decrypted: JWT_SECRET is not the one it was stored under/);
    expect(wrong.stderr() + wrong.stdout()).not.toContain(TEST_SECRET);
    const right = await startServer({ ...env, JWT_SECRET: TEST_SECRET });
    const jwks = (await (await fetch(`${right.url}/.well-known/jwks.json`)).json()) as { keys: { kid: string }[] };
    expect(jwks.keys.map((k) => k.kid)).toEqual([t.app.services.keyring.signer().kid]);
    expect(await right.stop()).toBe(0);
  });
});
