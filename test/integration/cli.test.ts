import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { openStore } from '../../src/store/open-store';
import { expectContract } from '../support/contract-check';
import { makeApp, type TestApp } from '../support/make-app';
import { tempDir } from '../support/server-process';

// `npm test` builds dist/ before jest runs; in a lone run, `npm run build` first.
const CLI_JS = path.join(__dirname, '..', '..', 'dist', 'cli', 'users.js');
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

interface Setup {
  dir: string;
  /** The app, over the same SQLite file the CLI writes. */
  t: TestApp;
  /** Runs `node dist/cli/users.js ...args` with only the store settings (no JWT_SECRET). */
  run(args: string[], opts?: { stdin?: string; env?: Record<string, string> }): Promise<CliResult>;
  /** Every byte of the database files, the write-ahead log included. */
  databaseBytes(): Buffer;
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

function runCli(dir: string, args: string[], opts: { stdin?: string; env?: Record<string, string> } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI_JS, ...args], {
      cwd: dir,
      env: { PATH: process.env['PATH'] ?? '', DATA_DIR: dir, DATABASE_URL: `sqlite:${path.join(dir, 'auth.db')}`, ...opts.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`users ${args.join(' ')} did not exit within 20 s\n${stderr}`));
    }, 20_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    // The CLI may exit (usage errors) before reading stdin; a write to its closed pipe is no fault.
    child.stdin.on('error', () => {});
    child.stdin.end(opts.stdin ?? '');
  });
}

async function setup(): Promise<Setup> {
  const dir = tempDir('auth-cli-');
  const store = await openStore(`sqlite:${path.join(dir, 'auth.db')}`);
  const t = await makeApp({}, { store });
  cleanups.push(async () => {
    await t.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return {
    dir,
    t,
    run: (args, opts) => runCli(dir, args, opts),
    databaseBytes: () =>
      Buffer.concat(
        fs
          .readdirSync(dir)
          .filter((f) => f.startsWith('auth.db'))
          .map((f) => fs.readFileSync(path.join(dir, f))),
      ),
  };
}

/** The CLI said nothing of a password or a hash. */
function expectNoSecrets(res: CliResult, ...secrets: string[]) {
  for (const text of [res.stdout, res.stderr]) {
    expect(text).not.toContain('$argon2');
    for (const secret of secrets) expect(text).not.toContain(secret);
  }
}

async function listJson(s: Setup): Promise<{ id: string; name: string; role: string; disabled: boolean; created_at: string }[]> {
  const res = await s.run(['list', '--json']);
  expect([res.code, res.stderr]).toEqual([0, '']);
  return JSON.parse(res.stdout);
}

async function loginStatus(s: Setup, name: string, password: string) {
  const res = await s.t.http().post('/login').send({ name, password });
  expectContract(res, 'POST', '/login');
  return [res.status, res.status === 200 ? undefined : res.body.code];
}

async function getUserStatus(s: Setup, access: string) {
  const res = await s.t.http().get('/user').set('Authorization', `Bearer ${access}`);
  expectContract(res, 'GET', '/user');
  return [res.status, res.status === 200 ? undefined : res.body.code];
}

describe('npm run users', () => {
  test('when a user is added with the password on stdin, then it can log in, and neither output nor database holds the password', async () => {
    const s = await setup();
    const password = 'correct horse battery staple';
    const add = await s.run(['add', 'alice', '--role', 'admin'], { stdin: `${password}\n` });
    expect(add).toEqual({ code: 0, stdout: 'Added user alice (admin)\n', stderr: '' });

    const list = await s.run(['list']);
    expect([list.code, list.stderr]).toEqual([0, '']);
    const lines = list.stdout.trimEnd().split('\n');
    expect(lines[0]).toBe('NAME   ROLE   DISABLED  CREATED');
    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatch(/^alice {2}admin {2}no {8}\d{4}-\d\d-\d\dT[\d:.]+Z$/);
    expectNoSecrets(list, password);

    const users = await listJson(s);
    expect(users).toEqual([{ id: expect.any(String), name: 'alice', role: 'admin', disabled: false, created_at: expect.stringMatching(ISO) }]);

    const { access } = await s.t.login('alice', password);
    const me = await s.t.http().get('/user').set('Authorization', `Bearer ${access}`);
    expect(me.body).toEqual({ id: users[0]?.id, name: 'alice', role: 'admin' });

    expectNoSecrets(add, password);
    const bytes = s.databaseBytes();
    // The hash is there, so the search below reads the real rows.
    expect(bytes.includes('$argon2id$')).toBe(true);
    expect(bytes.includes(password)).toBe(false);
  });

  test('when no --role is given, then the user gets the role user', async () => {
    const s = await setup();
    const add = await s.run(['add', 'bob'], { stdin: 'bob-password-1\n' });
    expect(add).toEqual({ code: 0, stdout: 'Added user bob (user)\n', stderr: '' });
    expect((await listJson(s)).map((u) => [u.name, u.role])).toEqual([['bob', 'user']]);
  });

  test('when the name is taken in another case, then add refuses with exit 1 and keeps the first user', async () => {
    const s = await setup();
    expect((await s.run(['add', 'alice'], { stdin: 'first-password\n' })).code).toBe(0);
    const dup = await s.run(['add', 'ALICE'], { stdin: 'second-password\n' });
    expect(dup).toEqual({ code: 1, stdout: '', stderr: 'A user named "ALICE" exists already.\n' });
    expect((await listJson(s)).map((u) => u.name)).toEqual(['alice']);
    expect(await loginStatus(s, 'alice', 'first-password')).toEqual([200, undefined]);
  });

  test.each([
    ['too short', 'short\n', 'The password must be at least 8 characters long.\n'],
    ['an empty line', '\n', 'The password must be at least 8 characters long.\n'],
    ['over 1024 bytes', `${'é'.repeat(513)}\n`, 'The password must be at most 1024 bytes long.\n'],
    ['nothing at all', '', 'No password on stdin: give it as the first line, or run the command in a terminal to be asked.\n'],
    ['a common password', 'baseball1\n', 'The password is one of the most common passwords, which are tried first; choose another.\n'],
    ['the name', 'Carol-Anne\n', 'The password must not be the name.\n'],
  ])('when the password on stdin is %s, then add refuses with exit 1 and adds nobody', async (_case, stdin, message) => {
    const s = await setup();
    const res = await s.run(['add', 'carol-anne'], { stdin });
    expect(res).toEqual({ code: 1, stdout: '', stderr: message });
    expect(await listJson(s)).toEqual([]);
  });

  test('when set-password is given a common password or the name, then it refuses with exit 1 and the old password still works', async () => {
    const s = await setup();
    expect((await s.run(['add', 'ellen-mae'], { stdin: 'first-password\n' })).code).toBe(0);
    for (const [stdin, message] of [
      ['letmein123\n', 'The password is one of the most common passwords, which are tried first; choose another.\n'],
      ['ELLEN-MAE\n', 'The password must not be the name.\n'],
    ]) {
      expect(await s.run(['set-password', 'ellen-mae'], { stdin })).toEqual({ code: 1, stdout: '', stderr: message });
    }
    expect(await loginStatus(s, 'ellen-mae', 'first-password')).toEqual([200, undefined]);
  });

  test('when the name looks like a taken one, then add refuses with exit 1 saying so', async () => {
    const s = await setup();
    expect((await s.run(['add', 'alice'], { stdin: 'first-password\n' })).code).toBe(0);
    expect(await s.run(['add', 'Alicé'], { stdin: 'second-password\n' })).toEqual({
      code: 1,
      stdout: '',
      stderr: 'A user whose name looks like "Alicé" exists already.\n',
    });
    expect(await s.run(['add', '\u0430lice'], { stdin: 'second-password\n' })).toEqual({
      code: 1,
      stdout: '',
      stderr: 'The name must use the letters of one script, not mix Cyrillic and Latin.\n',
    });
    expect((await listJson(s)).map((u) => u.name)).toEqual(['alice']);
  });

  test('when the password has outer spaces and a CRLF line end, then only the line end is dropped', async () => {
    const s = await setup();
    expect((await s.run(['add', 'dora'], { stdin: '  spaced pass  \r\nignored second line\n' })).code).toBe(0);
    expect(await loginStatus(s, 'dora', 'spaced pass')).toEqual([401, 'invalid_credentials']);
    expect(await loginStatus(s, 'dora', '  spaced pass  \r')).toEqual([401, 'invalid_credentials']);
    expect(await loginStatus(s, 'dora', '  spaced pass  ')).toEqual([200, undefined]);
  });

  test('when a password is reset, then only the new one logs in and tokens issued before are refused after the next sync', async () => {
    const s = await setup();
    await s.run(['add', 'erin'], { stdin: 'old-password-1\n' });
    const before = await s.t.login('erin', 'old-password-1');
    expect(await getUserStatus(s, before.access)).toEqual([200, undefined]);

    const res = await s.run(['set-password', 'Erin'], { stdin: 'new-password-2\n' });
    expect(res).toEqual({ code: 0, stdout: 'Set a new password for erin; ended 1 session\n', stderr: '' });
    expectNoSecrets(res, 'new-password-2', 'old-password-1');

    expect(await loginStatus(s, 'erin', 'old-password-1')).toEqual([401, 'invalid_credentials']);
    expect(await loginStatus(s, 'erin', 'new-password-2')).toEqual([200, undefined]);
    await s.t.app.services.revocations.sync();
    expect(await getUserStatus(s, before.access)).toEqual([401, 'invalid_token']);
    const refresh = await s.t.http().post('/refresh').send({ refresh_token: before.refresh });
    expect([refresh.status, refresh.body.code]).toEqual([401, 'invalid_refresh_token']);
    expect(s.databaseBytes().includes('new-password-2')).toBe(false);
  });

  test('when a user is disabled, then login is refused and their tokens stop working; enabled, they log in again', async () => {
    const s = await setup();
    await s.run(['add', 'fred'], { stdin: 'fred-password\n' });
    const before = await s.t.login('fred', 'fred-password');

    const disable = await s.run(['disable', 'fred']);
    expect(disable).toEqual({ code: 0, stdout: 'Disabled user fred; ended 1 session\n', stderr: '' });
    expect((await listJson(s)).map((u) => [u.name, u.disabled])).toEqual([['fred', true]]);
    const login = await s.t.http().post('/login').send({ name: 'fred', password: 'fred-password' });
    expectContract(login, 'POST', '/login');
    expect([login.status, login.body.code]).toEqual([401, 'invalid_credentials']);
    await s.t.app.services.revocations.sync();
    expect(await getUserStatus(s, before.access)).toEqual([401, 'invalid_token']);

    const enable = await s.run(['enable', 'fred']);
    expect(enable).toEqual({ code: 0, stdout: 'Enabled user fred\n', stderr: '' });
    expect(await loginStatus(s, 'fred', 'fred-password')).toEqual([200, undefined]);
    // Enabling brings back no session that disabling ended.
    expect(await getUserStatus(s, before.access)).toEqual([401, 'invalid_token']);
  });

  test('when a user is deleted, then they are gone, cannot log in, and their tokens are refused after the next sync', async () => {
    const s = await setup();
    await s.run(['add', 'gina'], { stdin: 'gina-password\n' });
    await s.run(['add', 'hank'], { stdin: 'hank-password\n' });
    const before = await s.t.login('gina', 'gina-password');

    const res = await s.run(['delete', 'gina']);
    expect(res).toEqual({ code: 0, stdout: 'Deleted user gina; ended 1 session\n', stderr: '' });
    expect((await listJson(s)).map((u) => u.name)).toEqual(['hank']);
    expect(await loginStatus(s, 'gina', 'gina-password')).toEqual([401, 'invalid_credentials']);
    await s.t.app.services.revocations.sync();
    expect(await getUserStatus(s, before.access)).toEqual([401, 'invalid_token']);
  });

  test.each([['set-password'], ['disable'], ['enable'], ['delete']])('when %s names no user, then exit 1 with "No user is named"', async (command) => {
    const s = await setup();
    const res = await s.run([command, 'nobody'], { stdin: 'some-password\n' });
    expect(res).toEqual({ code: 1, stdout: '', stderr: 'No user is named "nobody".\n' });
  });

  test.each([
    ['a second positional', ['add', 'ivan', 'pw-on-the-line']],
    ['--password VALUE', ['add', 'ivan', '--password', 'pw-on-the-line']],
    ['--password=VALUE', ['add', 'ivan', '--password=pw-on-the-line']],
    ['-pVALUE', ['add', 'ivan', '-ppw-on-the-line']],
    ['a positional after set-password NAME', ['set-password', 'ivan', 'pw-on-the-line']],
  ])('when a password comes as %s, then it is refused with exit 2 and not echoed', async (_case, args) => {
    const s = await setup();
    const res = await s.run(args, { stdin: 'stdin-password\n' });
    expect(res.code).toBe(2);
    expect(res.stdout).toBe('');
    expect(res.stderr).toMatch(/^Passwords are not taken from the command line.*Type it at the prompt, or give it as the first line of stdin/);
    expectNoSecrets(res, 'pw-on-the-line');
    expect(await listJson(s)).toEqual([]);
  });

  test.each([
    ['no command', [], 'No command given.'],
    ['an unknown command', ['frob'], 'Unknown command "frob".'],
    ['a missing NAME', ['disable'], 'disable needs a NAME.'],
    ['an unknown role', ['add', 'jane', '--role', 'root'], '--role must be user or admin.'],
    ['an unknown option', ['list', '--all'], 'Unknown option --all.'],
  ])('when given %s, then exit 2 with the message and the usage text', async (_case, args, message) => {
    const s = await setup();
    const res = await s.run(args);
    expect(res.code).toBe(2);
    expect(res.stdout).toBe('');
    expect(res.stderr.startsWith(`${message}\n\nUsage: npm run users -- <command> [options]\n`)).toBe(true);
  });

  test('when --help is given, then the usage text goes to stdout with exit 0', async () => {
    const s = await setup();
    const res = await s.run(['--help']);
    expect(res.code).toBe(0);
    expect(res.stderr).toBe('');
    expect(res.stdout.startsWith('Usage: npm run users -- <command> [options]\n')).toBe(true);
    expect(res.stdout).toContain('set-password NAME');
  });

  test('when NODE_ENV=production and JWT_SECRET is unset, then the CLI still works', async () => {
    const s = await setup();
    const res = await s.run(['add', 'kate'], { stdin: 'kate-password\n', env: { NODE_ENV: 'production' } });
    expect(res).toEqual({ code: 0, stdout: 'Added user kate (user)\n', stderr: '' });
  });

  test('when a store setting is invalid, then exit 1 with the configuration problem', async () => {
    const s = await setup();
    const res = await s.run(['list'], { env: { ARGON2_TIME_COST: '1' } });
    expect(res).toEqual({ code: 1, stdout: '', stderr: 'Invalid configuration:\n  - ARGON2_TIME_COST must be a whole number from 2 to 100 (got "1")\n' });
  });
});
