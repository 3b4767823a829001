'use strict';
// @ts-check
const { spawn, spawnSync } = require('node:child_process');
const { randomBytes } = require('node:crypto');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.join(__dirname, '..', '..');
const SERVER_JS = path.join(ROOT, 'dist', 'server.js');
const BARE_JS = path.join(__dirname, '..', 'bare-koa.js');
const PEER_JS = path.join(__dirname, '..', 'fastify-peer.js');

/** Logins are limited on failures only, but the bench raises the limits anyway (said in the table). */
const LOGIN_RATE = 1_000_000;

/**
 * @typedef {object} Proc
 * @property {string} name
 * @property {import('node:child_process').ChildProcess} child
 * @property {number} pid
 * @property {string} url
 * @property {() => number} logBytes bytes the process wrote to stdout (the request log)
 * @property {() => string} stderr the last few KB of stderr
 * @property {() => number | null} rss resident set size in bytes, now
 * @property {() => number | null} cpu seconds of CPU the process has used (all its threads), where /proc has it
 * @property {() => void} assertAlive throws when the process has exited
 * @property {() => Promise<void>} stop SIGTERM, then SIGKILL after 10 s
 */

/** @returns {Promise<number>} a port that was free a moment ago on 127.0.0.1 */
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Resident set size of a process: VmRSS from /proc where there is one, else `ps`.
 * @param {number} pid
 * @returns {number | null} bytes
 */
function rssOf(pid) {
  try {
    const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    if (match) return Number(match[1]) * 1024;
  } catch {
    /* no /proc: fall through to ps */
  }
  const ps = spawnSync('ps', ['-o', 'rss=', '-p', String(pid)], { encoding: 'utf8' });
  const kb = Number((ps.stdout ?? '').trim());
  return Number.isFinite(kb) && kb > 0 ? kb * 1024 : null;
}

/**
 * User plus system CPU time of a process, from /proc (Linux); null elsewhere.
 * @param {number} pid
 * @returns {number | null} seconds
 */
function cpuOf(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which is in parentheses and may hold spaces.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime and stime are fields 14 and 15 of stat(5), in clock ticks (USER_HZ, 100 on Linux).
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return null;
  }
}

/**
 * Starts `node <script>` with exactly `env` (plus PATH) in `cwd` and waits until GET `readyPath`
 * answers 200, for at most 20 s. stdout is drained and counted (a pipe, as under a process
 * manager or a container runtime); stderr is kept for error messages.
 * @param {{ name: string, script: string, env: Record<string, string>, cwd: string, readyPath: string, nodeArgs?: string[] }} opts
 * @returns {Promise<Proc>}
 */
async function startProcess(opts) {
  const port = await freePort();
  const child = spawn(process.execPath, [...(opts.nodeArgs ?? []), opts.script], {
    cwd: opts.cwd,
    env: { PATH: process.env['PATH'] ?? '', HOST: '127.0.0.1', PORT: String(port), ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let logBytes = 0;
  let stderr = '';
  let exitCode = /** @type {number | null | undefined} */ (undefined);
  child.stdout?.on('data', (/** @type {Buffer} */ chunk) => {
    logBytes += chunk.length;
  });
  child.stderr?.on('data', (/** @type {Buffer} */ chunk) => {
    stderr = (stderr + chunk.toString('utf8')).slice(-8192);
  });
  const exited = new Promise((resolve) =>
    child.once('exit', (code) => {
      exitCode = code;
      resolve(code);
    }),
  );
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (exitCode !== undefined) throw new Error(`${opts.name} exited with code ${exitCode} during start-up:\n${stderr}`);
    try {
      const res = await fetch(`${url}${opts.readyPath}`);
      await res.arrayBuffer();
      if (res.ok) break;
    } catch {
      /* not listening yet */
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`${opts.name} did not answer ${opts.readyPath} within 20 s:\n${stderr}`);
    }
    await sleep(100);
  }
  const pid = /** @type {number} */ (child.pid);
  return {
    name: opts.name,
    child,
    pid,
    url,
    logBytes: () => logBytes,
    stderr: () => stderr,
    rss: () => (exitCode === undefined ? rssOf(pid) : null),
    cpu: () => (exitCode === undefined ? cpuOf(pid) : null),
    assertAlive() {
      if (exitCode !== undefined) throw new Error(`${opts.name} exited with code ${exitCode}:\n${stderr}`);
    },
    async stop() {
      if (exitCode !== undefined) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/**
 * The server's environment for the bench: production mode, a random secret, an admin with a
 * random password, SQLite in a temp dir, and login limits raised out of the way.
 * @param {string} dataDir
 * @param {string} logLevel
 */
function serverEnv(dataDir, logLevel) {
  const adminPassword = randomBytes(18).toString('base64url');
  return {
    env: {
      NODE_ENV: 'production',
      // 36 random bytes are 48 base64 characters.
      JWT_SECRET: randomBytes(36).toString('base64'),
      ADMIN_NAME: 'bench-admin',
      ADMIN_PASSWORD: adminPassword,
      DATA_DIR: dataDir,
      DATABASE_URL: `sqlite:${path.join(dataDir, 'auth.db')}`,
      LOG_LEVEL: logLevel,
      LOGIN_RATE_IP: String(LOGIN_RATE),
      LOGIN_RATE_NAME: String(LOGIN_RATE),
    },
    credentials: { name: 'bench-admin', password: adminPassword },
  };
}

/**
 * Starts the built server with its own temp data dir (also its cwd, so no `.env` of the checkout
 * is read), reads its idle RSS a second after it answers (before any other request), and logs
 * in once to get an access token.
 * @param {{ name: string, logLevel: string, nodeArgs?: string[], script?: string, env?: Record<string, string | undefined> }} opts
 *   `script` defaults to dist/server.js (another build, for bench/ab.js); `env` adds to the bench's
 *   environment and overrides it (a key set to undefined is left out)
 */
async function startServer(opts) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'auth-bench-'));
  const { env, credentials } = serverEnv(dir, opts.logLevel);
  /** @type {Proc} */
  let proc;
  try {
    proc = await startProcess({
      name: opts.name,
      script: opts.script ?? SERVER_JS,
      env: withOverrides(env, opts.env),
      cwd: dir,
      readyPath: '/healthz',
      nodeArgs: opts.nodeArgs,
    });
  } catch (error) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  await sleep(1000);
  const idleRss = proc.rss();
  const res = await fetch(`${proc.url}/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(credentials),
  });
  const body = /** @type {{ access_token?: string }} */ (await res.json());
  if (res.status !== 200 || typeof body.access_token !== 'string') {
    await proc.stop();
    throw new Error(`${opts.name}: POST /login answered ${res.status}: ${JSON.stringify(body)}`);
  }
  const me = await fetch(`${proc.url}/user`, { headers: { authorization: `Bearer ${body.access_token}` } });
  const user = await me.text();
  if (me.status !== 200) throw new Error(`${opts.name}: GET /user answered ${me.status}: ${user}`);
  return {
    ...proc,
    dir,
    token: body.access_token,
    credentials,
    /** The environment it was started with (its JWT_SECRET for the fastify peer). */
    env: withOverrides(env, opts.env),
    /** Bytes, one second after start-up, before the first login. */
    idleRss,
    /** The exact JSON GET /user answers, for the bare route to answer too. */
    userJson: user,
    async stop() {
      await proc.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * `base` with `overrides` applied: a key set to undefined is removed.
 * @param {Record<string, string>} base
 * @param {Record<string, string | undefined>} [overrides]
 * @returns {Record<string, string>}
 */
function withOverrides(base, overrides = {}) {
  /** @type {Record<string, string>} */
  const env = { ...base };
  for (const [key, value] of Object.entries(overrides)) {
    if (value === undefined) delete env[key];
    else env[key] = value;
  }
  return env;
}

/**
 * The HS256 key that signed the server's token (by its `kid`), read from the server's store and
 * opened with its JWT_SECRET as the server does: the peer verifies with exactly that key.
 * @param {{ env: Record<string, string>, token: string }} server
 * @returns {Promise<string>} the key, base64
 */
async function hs256KeyOf(server) {
  const header = JSON.parse(Buffer.from(server.token.split('.')[0] ?? '', 'base64url').toString('utf8'));
  if (header.alg !== 'HS256' || typeof header.kid !== 'string')
    throw new Error(`fastify peer: the server's token is ${header.alg} (kid ${header.kid}), not HS256 with a kid`);
  const { openStore } = require(path.join(ROOT, 'dist', 'store', 'open-store.js'));
  const { keyEncryptionKey, openKeyMaterial } = require(path.join(ROOT, 'dist', 'services', 'signing-keys.js'));
  const store = await openStore(server.env.DATABASE_URL ?? `sqlite:${path.join(server.env.DATA_DIR ?? 'data', 'auth.db')}`);
  try {
    const record = (await store.listSigningKeys()).find((/** @type {{ kid: string }} */ k) => k.kid === header.kid);
    if (!record) throw new Error(`fastify peer: no signing key ${header.kid} in the server's store`);
    return openKeyMaterial(keyEncryptionKey(server.env.JWT_SECRET), record.kid, record.alg, record.privateEnc).toString('base64');
  } finally {
    await store.close();
  }
}

/**
 * Starts the fastify equal-feature peer (bench/fastify-peer.js) with the key, issuer and audience
 * of `server`, and refuses to go on unless it answers the server's token with the server's own
 * JSON and refuses the same token with one character changed: a peer that did not verify would
 * make the comparison meaningless.
 * @param {{ env: Record<string, string>, token: string, userJson: string }} server
 * @param {string} logLevel
 * @param {string[]} [nodeArgs]
 * @returns {Promise<Proc>}
 */
async function startPeer(server, logLevel, nodeArgs) {
  /** @type {Record<string, string>} */
  const env = { NODE_ENV: 'production', LOG_LEVEL: logLevel, JWT_KEY: await hs256KeyOf(server) };
  for (const key of ['JWT_ISSUER', 'JWT_AUDIENCE', 'CLOCK_SKEW', 'ACCESS_TOKEN_TTL']) {
    const value = server.env[key];
    if (value !== undefined) env[key] = value;
  }
  const peer = await startProcess({ name: 'fastify peer', script: PEER_JS, env, cwd: ROOT, readyPath: '/healthz', nodeArgs });
  try {
    const ok = await fetch(`${peer.url}/user`, { headers: { authorization: `Bearer ${server.token}` } });
    const body = await ok.text();
    if (ok.status !== 200 || body !== server.userJson)
      throw new Error(`fastify peer: GET /user with the server's token answered ${ok.status} ${body}, not the server's 200 ${server.userJson}`);
    const forged = await fetch(`${peer.url}/user`, { headers: { authorization: `Bearer ${tamper(server.token)}` } });
    await forged.arrayBuffer();
    if (forged.status !== 401) throw new Error(`fastify peer: GET /user with a tampered token answered ${forged.status}, not 401`);
  } catch (error) {
    await peer.stop();
    throw error;
  }
  return peer;
}

/**
 * The `alg` in the protected header of a JWT, or undefined when the token does not decode.
 * @param {string} token
 * @returns {string | undefined}
 */
function tokenAlgorithm(token) {
  try {
    const header = JSON.parse(Buffer.from(token.split('.')[0] ?? '', 'base64url').toString('utf8'));
    return typeof header.alg === 'string' ? header.alg : undefined;
  } catch {
    return undefined;
  }
}

/**
 * @param {string} userJson
 * @returns {Promise<Proc>}
 */
function startBare(userJson) {
  return startProcess({ name: 'bare Koa', script: BARE_JS, env: { NODE_ENV: 'production', BENCH_BODY: userJson }, cwd: ROOT, readyPath: '/user' });
}

/** @param {number} ms */
function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * The same token with one character of its signature changed: well formed, so the server
 * verifies it and answers 401.
 * @param {string} token
 */
function tamper(token) {
  const dot = token.lastIndexOf('.');
  const i = dot + 5;
  const c = token[i] === 'A' ? 'B' : 'A';
  return `${token.slice(0, i)}${c}${token.slice(i + 1)}`;
}

module.exports = {
  ROOT,
  SERVER_JS,
  LOGIN_RATE,
  freePort,
  rssOf,
  cpuOf,
  startProcess,
  startServer,
  startBare,
  startPeer,
  hs256KeyOf,
  sleep,
  tamper,
  tokenAlgorithm,
  withOverrides,
};
