import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import jwt from 'jsonwebtoken';
import { freePort, startServer, tempDir } from '../support/server-process';

// The bench's own helper (plain CommonJS JavaScript, typed here).
// eslint-disable-next-line @typescript-eslint/no-require-imports -- bench/ is JavaScript outside the TypeScript project
const { hs256KeyOf } = require('../../bench/lib/processes') as { hs256KeyOf: (server: { env: Record<string, string>; token: string }) => Promise<string> };

const ROOT = path.join(__dirname, '..', '..');
const SCENARIOS = [
  'bare_user',
  'user_valid',
  'peer_user',
  'user_valid_warn',
  'user_invalid',
  'login',
  'storm_user',
  'storm_login',
  // One server per algorithm (bench/lib/algorithms.js), on by default.
  'login_hs256',
  'user_es256',
  'login_es256',
  'user_eddsa',
  'login_eddsa',
];

/** Runs `node bench/run.js` with `args`; resolves with its exit code and output. */
function runBench(args: string[], script = 'run.js'): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [path.join(ROOT, 'bench', script), ...args], {
      cwd: ROOT,
      env: { PATH: process.env['PATH'] ?? '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    // The bench bounds its own runs; this bounds the bench.
    const timer = setTimeout(() => child.kill('SIGINT'), 100_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

// A smoke run: it shows the bench still runs end to end and writes what it should. It judges no
// timing (the figures of a 1 s run on a shared machine mean nothing); it does check that every
// scenario got the answers it was meant to measure (200s, 401s), so the bench measures the right
// thing. Needs dist/ (npm test builds before jest).
describe('the benchmark (smoke run)', () => {
  test('when run with --smoke, then it writes latest.json and latest.md with every scenario, numeric figures and no target judged', async () => {
    const out = tempDir('bench-smoke-');
    const { code, stdout, stderr } = await runBench(['--smoke', '--no-build', '--out', out]);
    expect({ code, stderr: code === 0 ? '' : stderr }).toEqual({ code: 0, stderr: '' });

    const report = JSON.parse(fs.readFileSync(path.join(out, 'latest.json'), 'utf8'));
    expect(report.options).toMatchObject({ smoke: true, duration: 1, rounds: 1, readme: false });
    expect(Object.keys(report.scenarios).sort()).toEqual([...SCENARIOS].sort());
    for (const id of SCENARIOS) {
      const s = report.scenarios[id];
      expect([id, typeof s.reqPerSec, typeof s.p50, typeof s.p99, typeof s.rssMb]).toEqual([id, 'number', 'number', 'number', 'number']);
      expect([id, s.rounds.length, s.rounds[0].requests > 0, s.unexpected]).toEqual([id, 1, true, 0]);
    }
    expect(report.scenarios.user_valid.rounds[0].statuses).toEqual({ '200': expect.any(Number) });
    expect(report.scenarios.peer_user.rounds[0].statuses).toEqual({ '200': expect.any(Number) });
    expect([report.ratios.userVsBare.length, report.ratios.userVsPeer.length]).toEqual([1, 1]);
    expect(report.scenarios.user_invalid.rounds[0].statuses).toEqual({ '401': expect.any(Number) });
    expect(report.scenarios.login.rounds[0].statuses).toEqual({ '200': expect.any(Number) });
    // One server per signing algorithm, each checked by the bench to sign with it (the token's alg).
    expect(report.setup.algorithms.map((a: { alg: string }) => a.alg)).toEqual(['HS256', 'ES256', 'EdDSA']);
    for (const id of ['login_hs256', 'user_es256', 'login_es256', 'user_eddsa', 'login_eddsa']) {
      expect([id, report.scenarios[id].rounds[0].statuses]).toEqual([id, { '200': expect.any(Number) }]);
    }
    expect(typeof report.memory.idle.server).toBe('number');
    expect(report.targets.map((t: { id: string; status: string }) => [t.id, t.status])).toEqual([
      ['user_vs_bare', 'not judged (smoke run)'],
      ['user_vs_peer', 'not judged (smoke run)'],
      ['storm_vs_quiet', 'not judged (smoke run)'],
      ['idle_rss', 'not judged (smoke run)'],
      ['rss_growth', 'not run'],
    ]);
    expect(report.machine).toMatchObject({ cores: expect.any(Number), node: process.version });

    const markdown = fs.readFileSync(path.join(out, 'latest.md'), 'utf8');
    for (const id of SCENARIOS) expect(markdown).toContain(`| ${report.scenarios[id].title} |`);
    expect(markdown).toContain('**Smoke run**');
    expect(markdown).toMatch(/server \/ bare Koa [\d.]+x; server \/ fastify equal-feature peer [\d.]+x/);
    expect(markdown).toContain(`Node ${process.version}`);
    expect(stdout).toContain(markdown.trim());
    fs.rmSync(out, { recursive: true, force: true });
  }, 120_000);

  test('when the in-process comparison runs briefly, then it answers GET /user with 200 from both apps and prints both lines', async () => {
    const { code, stdout, stderr } = await runBench(['--rounds', '1', '--requests', '50'], 'inprocess.js');
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
    expect(stdout).toMatch(/^bare Koa +[\d.]+ µs/m);
    expect(stdout).toMatch(/^dist +[\d.]+ µs +\+-?[\d.]+ over bare Koa$/m);
  });
});

/** Starts bench/fastify-peer.js with `env` and waits for GET /healthz. */
async function startPeer(env: Record<string, string>) {
  const port = await freePort();
  let out = '';
  let err = '';
  const child = spawn(process.execPath, [path.join(ROOT, 'bench', 'fastify-peer.js')], {
    cwd: ROOT,
    env: { PATH: process.env['PATH'] ?? '', HOST: '127.0.0.1', PORT: String(port), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the peer exited: ${err}`);
    const up = await fetch(`${url}/healthz`).then(
      (r) => r.ok,
      () => false,
    );
    if (up) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`the peer did not start: ${err}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    stdout: () => out,
    async stop() {
      child.kill('SIGTERM');
      return exited;
    },
  };
}

// The peer must really do what the server does, or the ratio means nothing: verify (key,
// algorithm, issuer, audience, expiry, the server's claim checks), look the session up in the
// revocation set, and answer with the same JSON, headers and log line.
describe('the fastify equal-feature peer', () => {
  test('when it runs with the server key, then it answers the server token with the same JSON and headers, refuses every forged or refused token with a 401, and logs one line', async () => {
    const secret = randomBytes(36).toString('base64');
    const password = randomBytes(18).toString('base64url');
    const dir = tempDir('bench-peer-');
    const server = await startServer(
      { NODE_ENV: 'production', JWT_SECRET: secret, ADMIN_NAME: 'bench-admin', ADMIN_PASSWORD: password, DATA_DIR: dir, LOG_LEVEL: 'warn' },
      { cwd: dir },
    );
    let peer: Awaited<ReturnType<typeof startPeer>> | undefined;
    try {
      const login = async () => {
        const res = await fetch(`${server.url}/login`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ name: 'bench-admin', password }),
        });
        expect(res.status).toBe(200);
        return ((await res.json()) as { access_token: string }).access_token;
      };
      const token = await login();
      const revokedToken = await login();
      const claims = jwt.decode(token) as Record<string, unknown>;
      const revokedSid = (jwt.decode(revokedToken) as { sid: string }).sid;
      // The key that signed the server's token, as the bench hands it to the peer.
      const keyBase64 = await hs256KeyOf({ env: { JWT_SECRET: secret, DATA_DIR: dir }, token });
      const key = Buffer.from(keyBase64, 'base64');
      const kid = (jwt.decode(token, { complete: true }) as { header: { kid: string } }).header.kid;
      peer = await startPeer({ NODE_ENV: 'production', JWT_KEY: keyBase64, LOG_LEVEL: 'info', PEER_REVOKED_SIDS: revokedSid });

      const get = async (url: string, headers: Record<string, string>) => {
        const res = await fetch(`${url}/user`, { headers });
        return { status: res.status, headers: res.headers, body: await res.text() };
      };
      const bearer = (t: string) => ({ authorization: `Bearer ${t}` });
      const mine = await get(server.url, bearer(token));
      const theirs = await get(peer.url, { ...bearer(token), 'x-request-id': 'peer-smoke-1' });
      expect([mine.status, theirs.status, theirs.body]).toEqual([200, 200, mine.body]);
      const compared = [
        'cache-control',
        'content-security-policy',
        'content-type',
        'cross-origin-resource-policy',
        'referrer-policy',
        'x-content-type-options',
        'x-frame-options',
      ];
      const pick = (h: Headers) => Object.fromEntries(compared.map((n) => [n, h.get(n)]));
      expect(pick(theirs.headers)).toEqual(pick(mine.headers));
      expect(theirs.headers.get('x-request-id')).toBe('peer-smoke-1');

      const now = Math.floor(Date.now() / 1000);
      // Forgeries carry the server's kid, so each differs from a good token in one respect only.
      const sign = (payload: object, k: string | Buffer = key, algorithm: jwt.Algorithm = 'HS256') => jwt.sign(payload, k, { algorithm, keyid: kid });
      const dot = token.lastIndexOf('.');
      const refused: [string, Record<string, string>][] = [
        ['no Authorization header', {}],
        ['another scheme', { authorization: `Basic ${token}` }],
        ['the same claims under another key', bearer(sign(claims, randomBytes(36).toString('base64')))],
        ['a changed signature', bearer(`${token.slice(0, dot + 5)}${token[dot + 5] === 'A' ? 'B' : 'A'}${token.slice(dot + 6)}`)],
        ['alg none', bearer(`${Buffer.from('{"alg":"none","typ":"JWT"}').toString('base64url')}.${token.split('.')[1]}.`)],
        ['HS384 with the right key', bearer(sign(claims, key, 'HS384'))],
        ['another issuer', bearer(sign({ ...claims, iss: 'someone-else' }))],
        ['another audience', bearer(sign({ ...claims, aud: 'someone-else' }))],
        ['expired past the skew', bearer(sign({ ...claims, iat: now - 1000, exp: now - 60 }))],
        ['a lifetime longer than the server issues', bearer(sign({ ...claims, iat: now, exp: now + 86_400 }))],
        ['a role the server does not have', bearer(sign({ ...claims, role: 'root' }))],
        ['a revoked session', bearer(revokedToken)],
      ];
      for (const [name, headers] of refused) {
        const res = await get(peer.url, headers);
        expect([name, res.status, res.headers.get('content-type'), res.headers.get('www-authenticate')?.startsWith('Bearer realm="api"')]).toEqual([
          name,
          401,
          'application/problem+json',
          true,
        ]);
      }
      // The server refuses the same ones (the revoked session is revoked only on the peer).
      for (const [name, headers] of refused.slice(0, -1)) expect([name, (await get(server.url, headers)).status]).toEqual([name, 401]);

      expect(await peer.stop()).toBe(0);
      const line = peer
        .stdout()
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .find((l) => l['reqId'] === 'peer-smoke-1');
      expect(line).toMatchObject({ level: 30, msg: 'request', method: 'GET', path: '/user', status: 200, ms: expect.any(Number) });
      peer = undefined;
    } finally {
      await peer?.stop();
      await server.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
