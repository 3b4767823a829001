'use strict';
// @ts-check
/**
 * `npm run bench`: builds the server, starts it (twice: LOG_LEVEL=info, the default, and
 * LOG_LEVEL=warn), a bare Koa app and the fastify equal-feature peer (bench/fastify-peer.js),
 * each in its own process (with --algorithms, one more server per signing algorithm of
 * bench/lib/algorithms.js), and runs the scenarios in interleaved rounds on 127.0.0.1. Writes latest.json and latest.md to bench/results (or --out)
 * and copies the table into README.md between its bench markers. See bench/NOTES.md.
 */
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { load, median, round } = require('./lib/load');
const { parseOptions, USAGE } = require('./lib/options');
const { ALGORITHM_SERVERS, describeEnv, rowId } = require('./lib/algorithms');
const { LOGIN_RATE, ROOT, SERVER_JS, sleep, startBare, startPeer, startServer, tamper, tokenAlgorithm } = require('./lib/processes');
const { renderMarkdown, updateReadme } = require('./lib/report');

const MB = 1024 * 1024;
const TARGETS = { userVsBare: 0.75, userVsPeer: 1, stormVsQuiet: 0.6, idleRssMb: 90, rssGrowth: 0.2, soakSeconds: 60 };

/** @param {number | null} bytes */
const mb = (bytes) => (bytes === null ? null : round(bytes / MB, 1));

/** @param {string} line */
const say = (line) => process.stderr.write(`${line}\n`);

/**
 * @typedef {import('./lib/processes').Proc} Proc
 * @typedef {{ id: string, title: string, proc: Proc, spec: Omit<import('./lib/load').LoadSpec, 'url' | 'duration'> & { path: string } }} Part
 */

/**
 * Runs the parts of one step at the same time (one part, or the storm's two) for `duration` s.
 * @param {Part[]} parts
 * @param {number} duration
 */
async function runStep(parts, duration) {
  for (const part of parts) part.proc.assertAlive();
  const logBefore = parts.map((p) => p.proc.logBytes());
  const cpuBefore = parts.map((p) => p.proc.cpu());
  const results = await Promise.all(parts.map((p) => load({ ...p.spec, url: `${p.proc.url}${p.spec.path}`, duration })));
  const cpuAfter = parts.map((p) => p.proc.cpu());
  // Let the last log lines drain from the pipe before counting them.
  await sleep(200);
  return parts.map((part, i) => {
    part.proc.assertAlive();
    const result = /** @type {import('./lib/load').LoadResult} */ (results[i]);
    const before = cpuBefore[i];
    const after = cpuAfter[i];
    // CPU per response means something only when one load ran against the process.
    const cpuUs =
      parts.length === 1 && typeof before === 'number' && typeof after === 'number' && result.requests > 0
        ? round(((after - before) / result.requests) * 1e6, 1)
        : null;
    return { ...result, cpuUs, rssMb: mb(part.proc.rss()), logBytes: part.proc.logBytes() - /** @type {number} */ (logBefore[i]) };
  });
}

/**
 * @param {{ id: string, title: string, proc: Proc }[]} parts
 * @param {Record<string, any[]>} measured
 */
function summarise(parts, measured) {
  /** @type {Record<string, any>} */
  const scenarios = {};
  for (const { id, title, proc } of parts) {
    const rounds = measured[id] ?? [];
    scenarios[id] = {
      title,
      process: proc.name,
      rounds,
      reqPerSec: round(median(rounds.map((r) => r.reqPerSec)), 1),
      p50: round(median(rounds.map((r) => r.p50)), 2),
      p99: round(median(rounds.map((r) => r.p99)), 2),
      cpuUs: rounds.every((r) => typeof r.cpuUs === 'number') ? round(median(rounds.map((r) => r.cpuUs)), 1) : null,
      rssMb: Math.max(...rounds.map((r) => r.rssMb ?? 0)),
      unexpected: rounds.reduce((a, r) => a + r.unexpected, 0),
    };
  }
  return scenarios;
}

/**
 * @param {string} id
 * @param {string} title
 * @param {number} value
 * @param {string} goal
 * @param {boolean} met
 * @param {{ smoke: boolean, broken: boolean, notRun?: string }} state
 */
function target(id, title, value, goal, met, state) {
  let status = met ? 'met' : 'missed';
  if (state.notRun) status = 'not run';
  else if (state.smoke) status = 'not judged (smoke run)';
  else if (state.broken) status = 'not judged (unexpected responses)';
  return { id, title, value, goal, status, ...(state.notRun ? { note: state.notRun } : {}) };
}

async function main() {
  const started = Date.now();
  const opts = parseOptions(process.argv.slice(2), process.env, path.join(__dirname, 'results'));
  if (opts === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  if (opts.build) {
    say('building (npm run build) ...');
    const build = spawnSync(process.platform === 'win32' ? 'npm.cmd' : 'npm', ['run', '-s', 'build'], { cwd: ROOT, stdio: 'inherit' });
    if (build.status !== 0) throw new Error('npm run build failed');
  }
  const script = opts.server ?? SERVER_JS;
  if (!fs.existsSync(script)) throw new Error(`${opts.server ? script : 'dist/server.js'} is missing: run npm run build (or drop --no-build)`);

  // How long the load is off before a memory reading (shorter in a smoke run, which judges nothing).
  const settleMs = opts.smoke ? 200 : 3_000;
  /** @type {{ stop(): Promise<void> }[]} */
  const running = [];
  const stopAll = () => Promise.all(running.map((p) => p.stop().catch(() => undefined)));
  const onSignal = () => {
    void stopAll().then(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  try {
    const starts = await Promise.allSettled([
      startServer({ name: 'server', logLevel: 'info', script }),
      startServer({ name: 'server (LOG_LEVEL=warn)', logLevel: 'warn', script }),
    ]);
    // Whichever started is stopped at the end, even when the other failed.
    for (const r of starts) if (r.status === 'fulfilled') running.push(r.value);
    for (const r of starts) if (r.status === 'rejected') throw r.reason;
    const [server, quiet] = starts.map((r) => /** @type {PromiseFulfilledResult<Awaited<ReturnType<typeof startServer>>>} */ (r).value);
    const bare = await startBare(server.userJson);
    running.push(bare);
    // The peer gets the server's key, issuer and audience, and must verify the server's token.
    const peer = await startPeer(server, 'info');
    running.push(peer);
    const algorithmServers = opts.algorithms ? await startAlgorithmServers(script, running) : [];
    await sleep(1000);
    const idle = { server: mb(server.idleRss), quiet: mb(quiet.idleRss), bare: mb(bare.rss()), peer: mb(peer.rss()) };
    say(`idle RSS: server ${idle.server} MB, server (warn) ${idle.quiet} MB, bare Koa ${idle.bare} MB, fastify peer ${idle.peer} MB`);

    const c = opts.connections;
    const auth = (/** @type {string} */ token) => ({ authorization: `Bearer ${token}` });
    const loginBody = JSON.stringify(server.credentials);
    /** @type {Part} */
    const loginPart = {
      id: 'login',
      title: `POST /login (argon2id), ${opts.loginConnections} connections`,
      proc: server,
      spec: {
        path: '/login',
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: loginBody,
        connections: opts.loginConnections,
        expect: 200,
      },
    };
    /** @type {Part[][]} one step per entry; the parts of a step run at the same time */
    const steps = [
      [
        {
          id: 'bare_user',
          title: 'GET /user, bare Koa route, no auth (baseline)',
          proc: bare,
          spec: { path: '/user', method: 'GET', connections: c, expect: 200 },
        },
      ],
      [
        {
          id: 'user_valid',
          title: 'GET /user, valid token',
          proc: server,
          spec: { path: '/user', method: 'GET', headers: auth(server.token), connections: c, expect: 200 },
        },
      ],
      [
        {
          id: 'peer_user',
          title: 'GET /user, valid token, fastify equal-feature peer',
          proc: peer,
          spec: { path: '/user', method: 'GET', headers: auth(server.token), connections: c, expect: 200 },
        },
      ],
      [
        {
          id: 'user_valid_warn',
          title: 'GET /user, valid token, LOG_LEVEL=warn',
          proc: quiet,
          spec: { path: '/user', method: 'GET', headers: auth(quiet.token), connections: c, expect: 200 },
        },
      ],
      [
        {
          id: 'user_invalid',
          title: 'GET /user, invalid token (401)',
          proc: server,
          spec: { path: '/user', method: 'GET', headers: auth(tamper(server.token)), connections: c, expect: 401 },
        },
      ],
      [loginPart],
      // The algorithm rows (--algorithms), before the storm, which stays last (the soak reuses it).
      ...algorithmServers.flatMap(({ alg, env, rows, proc }) =>
        rows.map((row) => {
          const how = `${alg} (${describeEnv(env)})`;
          /** @type {Part} */
          const part =
            row === 'user'
              ? {
                  id: rowId(row, alg),
                  title: `GET /user, valid token, ${how}`,
                  proc,
                  spec: { path: '/user', method: 'GET', headers: auth(proc.token), connections: c, expect: 200 },
                }
              : {
                  id: rowId(row, alg),
                  title: `POST /login (argon2id), ${how}, ${opts.loginConnections} connections`,
                  proc,
                  spec: {
                    path: '/login',
                    method: 'POST',
                    headers: { 'content-type': 'application/json' },
                    body: JSON.stringify(proc.credentials),
                    connections: opts.loginConnections,
                    expect: 200,
                  },
                };
          return [part];
        }),
      ),
      [
        {
          id: 'storm_user',
          title: 'GET /user, valid token, during the login storm',
          proc: server,
          spec: { path: '/user', method: 'GET', headers: auth(server.token), connections: c, expect: 200 },
        },
        { ...loginPart, id: 'storm_login', title: `POST /login during the storm, ${opts.loginConnections} connections` },
      ],
    ];
    const parts = steps.flat();

    if (opts.warmup > 0) say(`warm-up: ${opts.warmup} s per scenario`);
    for (const step of opts.warmup > 0 ? steps : []) {
      const results = await runStep(step, opts.warmup);
      results.forEach((r, i) => {
        if (r.unexpected > 0) say(`  warning: ${step[i]?.title}: ${r.unexpected} unexpected answers in warm-up ${JSON.stringify(r.statuses)}`);
      });
    }
    // Memory is read after the load has been off for a while: argon2 holds 19 MiB per hash in
    // flight, so a reading taken as a login storm ends says more about that moment than about
    // what the process keeps. Every settled reading waits the same.
    await sleep(settleMs);
    const afterWarmup = { server: mb(server.rss()), quiet: mb(quiet.rss()), bare: mb(bare.rss()) };
    say(`RSS after warm-up: server ${afterWarmup.server} MB`);

    /** @type {Record<string, any[]>} */
    const measured = {};
    let serverLoadSeconds = 0;
    for (let r = 1; r <= opts.rounds; r += 1) {
      for (const step of steps) {
        const results = await runStep(step, opts.duration);
        if (step.some((p) => p.proc === server)) serverLoadSeconds += opts.duration;
        results.forEach((result, i) => {
          const part = /** @type {Part} */ (step[i]);
          (measured[part.id] ??= []).push({ round: r, ...result });
          say(
            `round ${r}/${opts.rounds}  ${part.title}: ${result.reqPerSec} req/s, p50 ${result.p50} ms, p99 ${result.p99} ms${result.cpuUs === null ? '' : `, ${result.cpuUs} µs CPU/response`}${result.unexpected ? `, ${result.unexpected} unexpected ${JSON.stringify(result.statuses)}` : ''}`,
          );
        });
        await sleep(250);
      }
    }
    await sleep(settleMs);
    const afterRounds = mb(server.rss());

    let afterSoak = null;
    if (opts.soak > 0) {
      say(`soak: ${opts.soak} s of GET /user plus logins`);
      const stormStep = /** @type {Part[]} */ (steps[steps.length - 1]);
      const soak = await runStep(stormStep, opts.soak);
      await sleep(settleMs);
      afterSoak = { seconds: opts.soak, rssMb: mb(server.rss()), reqPerSec: soak.map((s) => s.reqPerSec) };
    }

    const scenarios = summarise(parts, measured);
    const perRound = (/** @type {string} */ a, /** @type {string} */ b) =>
      (measured[a] ?? []).map((x, i) => round(x.reqPerSec / ((measured[b] ?? [])[i]?.reqPerSec ?? NaN), 3));
    const userVsBare = perRound('user_valid', 'bare_user');
    const userVsPeer = perRound('user_valid', 'peer_user');
    const peerVsBare = perRound('peer_user', 'bare_user');
    // CPU per response, peer over server, per round (above 1: the server spends less per answer).
    // Steadier than req/s here, since it leaves out time spent waiting for a core.
    const peerCpuVsServer = (measured['peer_user'] ?? []).map((x, i) => {
      const mine = (measured['user_valid'] ?? [])[i]?.cpuUs;
      return typeof x.cpuUs === 'number' && typeof mine === 'number' && mine > 0 ? round(x.cpuUs / mine, 3) : NaN;
    });
    /** @type {Record<string, number[]>} each algorithm row over its HS256 counterpart, per round */
    const algorithmRatios = {};
    for (const { alg, rows } of algorithmServers) {
      for (const row of rows) {
        if (alg === 'HS256') continue;
        algorithmRatios[rowId(row, alg)] = perRound(
          rowId(row, alg),
          row === 'user' ? 'user_valid' : measured[rowId('login', 'HS256')] ? rowId('login', 'HS256') : 'login',
        );
      }
    }
    const stormVsQuiet = perRound('storm_user', 'user_valid');
    const infoVsWarn = perRound('user_valid', 'user_valid_warn');
    const validRounds = measured['user_valid'] ?? [];
    const bytesPerRequest = (/** @type {any[]} */ rounds) =>
      round(
        rounds.reduce((a, r) => a + r.logBytes, 0) /
          Math.max(
            1,
            rounds.reduce((a, r) => a + r.requests, 0),
          ),
        0,
      );
    const logBytesPerRequest = bytesPerRequest(validRounds);
    const peerLogBytesPerRequest = bytesPerRequest(measured['peer_user'] ?? []);
    const broken = (/** @type {string[]} */ ids) => ids.some((id) => scenarios[id].unexpected > 0);

    // The memory check: RSS after at least 60 s of load since warm-up, against RSS after warm-up.
    let memory;
    if (afterSoak)
      memory = {
        basis: `after a ${afterSoak.seconds} s soak following the rounds`,
        rssMb: afterSoak.rssMb,
        loadSeconds: serverLoadSeconds + afterSoak.seconds,
      };
    else memory = { basis: `after the rounds (${serverLoadSeconds} s of load on the server)`, rssMb: afterRounds, loadSeconds: serverLoadSeconds };
    const growth = memory.rssMb !== null && afterWarmup.server ? round(memory.rssMb / afterWarmup.server - 1, 3) : NaN;
    const soakNotRun =
      memory.loadSeconds < TARGETS.soakSeconds
        ? `only ${memory.loadSeconds} s of load after warm-up; needs ${TARGETS.soakSeconds} s (use --soak or a longer --duration/--rounds)`
        : undefined;

    const state = { smoke: opts.smoke, broken: false };
    const targets = [
      target(
        'user_vs_bare',
        'GET /user (valid token) / bare Koa route',
        round(median(userVsBare), 3),
        `>= ${TARGETS.userVsBare}x`,
        median(userVsBare) >= TARGETS.userVsBare,
        { ...state, broken: broken(['user_valid', 'bare_user']) },
      ),
      target(
        'user_vs_peer',
        'GET /user (valid token) / fastify equal-feature peer',
        round(median(userVsPeer), 3),
        `>= ${TARGETS.userVsPeer}x`,
        median(userVsPeer) >= TARGETS.userVsPeer,
        { ...state, broken: broken(['user_valid', 'peer_user']) },
      ),
      target(
        'storm_vs_quiet',
        'GET /user during the login storm / GET /user quiet',
        round(median(stormVsQuiet), 3),
        `>= ${TARGETS.stormVsQuiet}x`,
        median(stormVsQuiet) >= TARGETS.stormVsQuiet,
        { ...state, broken: broken(['storm_user', 'storm_login', 'user_valid']) },
      ),
      target('idle_rss', 'Idle RSS of the server, MB', idle.server ?? NaN, `<= ${TARGETS.idleRssMb} MB`, (idle.server ?? Infinity) <= TARGETS.idleRssMb, state),
      target('rss_growth', `RSS growth ${memory.basis} over RSS after warm-up`, growth, `<= ${TARGETS.rssGrowth * 100}%`, growth <= TARGETS.rssGrowth, {
        ...state,
        notRun: soakNotRun,
      }),
    ];

    const cpus = os.cpus();
    const report = {
      schema: 1,
      date: new Date().toISOString(),
      machine: {
        cpu: cpus[0]?.model.trim() ?? 'unknown',
        cores: cpus.length,
        memoryGb: round(os.totalmem() / 1024 ** 3, 1),
        node: process.version,
        platform: `${process.platform} ${process.arch}`,
      },
      // No paths of this machine in a file meant to be committed.
      options: { ...opts, out: undefined, server: opts.server === undefined ? undefined : 'another build (--server)' },
      setup: {
        server: 'node dist/server.js, NODE_ENV=production, SQLite in a temp dir, stdout piped to the bench and discarded',
        logLevels: { server: 'info (the default)', quiet: 'warn', peer: 'info' },
        peer: 'bench/fastify-peer.js: fastify 5, @fastify/jwt (HS256, the server key, issuer, audience, exp, fast-jwt cache of 1,000), the server claim checks, a revocation Set.has on sid, @fastify/helmet with the API header set, request id and one request line per answer through the server logger factory (info, buffered stdout piped to the bench)',
        algorithms: algorithmServers.map(({ alg, env, rows }) => ({ alg, env: describeEnv(env), rows: rows.map((r) => rowId(r, alg)), tokenAlg: alg })),
        loginRateLimits: LOGIN_RATE,
        settleMs,
        order: 'each round runs every scenario once, in the order of the table; all processes stay up for the whole run',
      },
      scenarios,
      ratios: { userVsBare, userVsPeer, peerVsBare, peerCpuVsServer, stormVsQuiet, infoVsWarn, algorithms: algorithmRatios },
      logging: {
        infoVsWarn: round(median(infoVsWarn), 3),
        cpuUs: { info: scenarios['user_valid'].cpuUs, warn: scenarios['user_valid_warn'].cpuUs },
        logBytesPerRequest,
        peerLogBytesPerRequest,
      },
      memory: { idle, afterWarmup, afterRounds, afterSoak, check: { ...memory, growth } },
      targets,
      elapsedSeconds: round((Date.now() - started) / 1000, 0),
    };

    fs.mkdirSync(opts.out, { recursive: true });
    const markdown = renderMarkdown(report);
    writeAtomically(path.join(opts.out, 'latest.json'), `${JSON.stringify(report, null, 2)}\n`);
    writeAtomically(path.join(opts.out, 'latest.md'), markdown);
    if (opts.readme) {
      const readme = path.join(ROOT, 'README.md');
      if (!updateReadme(readme, markdown)) say('README.md has no <!-- bench:start --> / <!-- bench:end --> markers: left as it is');
    }
    process.stdout.write(`\n${markdown}\n`);
    say(`wrote ${path.relative(process.cwd(), path.join(opts.out, 'latest.json'))} and latest.md in ${report.elapsedSeconds} s`);
  } finally {
    await stopAll();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/**
 * Starts one server per entry of ALGORITHM_SERVERS and checks that each signs its token with its
 * algorithm. Every server that started goes into `running` (stopped at the end); when any failed
 * to start or signed with another algorithm, throws one error naming each of those rows: the
 * bench reports no number for an algorithm the server did not use.
 * @param {string} script
 * @param {{ stop(): Promise<void> }[]} running
 */
async function startAlgorithmServers(script, running) {
  const starts = await Promise.allSettled(
    ALGORITHM_SERVERS.map(({ env }) => startServer({ name: `server (${describeEnv(env)})`, logLevel: 'info', script, env })),
  );
  const problems = [];
  const started = [];
  for (const [i, result] of starts.entries()) {
    const entry = /** @type {import('./lib/algorithms').AlgorithmServer} */ (ALGORITHM_SERVERS[i]);
    const rows = entry.rows.map((r) => rowId(r, entry.alg)).join(', ');
    if (result.status === 'rejected') {
      const why = result.reason instanceof Error ? result.reason.message : String(result.reason);
      problems.push(`rows ${rows}: the server refused ${describeEnv(entry.env)}: ${why.trim()}`);
      continue;
    }
    running.push(result.value);
    const signed = tokenAlgorithm(result.value.token);
    if (signed !== entry.alg) {
      problems.push(
        `rows ${rows}: the server started with ${describeEnv(entry.env)} but signed its token with ${signed ?? 'nothing readable'}, not ${entry.alg} (this build ignores the setting)`,
      );
      continue;
    }
    started.push({ ...entry, proc: result.value });
  }
  if (problems.length > 0) throw new Error(`the signing-algorithm rows (--algorithms) cannot run:\n  - ${problems.join('\n  - ')}`);
  return started;
}

/**
 * @param {string} file
 * @param {string} text
 */
function writeAtomically(file, text) {
  fs.writeFileSync(`${file}.tmp`, text);
  fs.renameSync(`${file}.tmp`, file);
}

main().catch((error) => {
  process.stderr.write(`bench failed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
