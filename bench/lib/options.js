'use strict';
// @ts-check
const path = require('node:path');
const { ALGORITHM_ROWS_BY_DEFAULT } = require('./algorithms');

const USAGE = `Usage: npm run bench -- [options]

  --duration <s>           seconds per scenario per round (default 6; env BENCH_DURATION)
  --rounds <n>             interleaved rounds (default 3; env BENCH_ROUNDS)
  --connections <n>        connections for GET /user (default 50; env BENCH_CONNECTIONS)
  --login-connections <n>  connections for POST /login, alone and in the storm (default 4;
                           env BENCH_LOGIN_CONNECTIONS)
  --warmup <s>             seconds of warm-up per scenario and process, 0 for none (default 2;
                           env BENCH_WARMUP)
  --soak [s]               after the rounds, a continuous run of GET /user plus logins for the
                           memory check (default 60 s when given; env BENCH_SOAK)
  --out <dir>              where latest.json and latest.md go (default bench/results; env BENCH_OUT)
  --smoke                  a check that the bench runs: 1 s, 1 round, no warm-up, 10 connections,
                           no target judged
  --no-build               use dist/ as it is instead of running npm run build first
  --server <file>          run another build of the server (say a copy of dist/ from before a
                           change; its folder's parent needs public/, openapi.yaml, node_modules/);
                           implies --no-build and --no-readme
  --no-readme              do not copy the table into README.md (only done for the default --out)
  --algorithms             add the signing-algorithm rows of bench/lib/algorithms.js (GET /user with
                           ES256 and EdDSA tokens, POST /login with HS256, ES256, EdDSA), one more
                           server each; the run fails if a server does not sign with its algorithm
                           (env BENCH_ALGORITHMS=1; --no-algorithms leaves them out)
  --help`;

/**
 * @typedef {object} Options
 * @property {number} duration
 * @property {number} rounds
 * @property {number} connections
 * @property {number} loginConnections
 * @property {number} warmup
 * @property {number} soak 0 for none
 * @property {string} out
 * @property {boolean} smoke
 * @property {boolean} build
 * @property {boolean} readme
 * @property {string | undefined} server
 * @property {boolean} algorithms
 */

/**
 * Parses the command line and BENCH_* variables; flags win over variables. Throws one error
 * naming every problem.
 * @param {string[]} argv
 * @param {Record<string, string | undefined>} env
 * @param {string} defaultOut
 * @returns {Options | 'help'}
 */
function parseOptions(argv, env, defaultOut) {
  /** @type {Record<string, string | true>} */
  const flags = {};
  const problems = [];
  for (let i = 0; i < argv.length; i += 1) {
    const arg = /** @type {string} */ (argv[i]);
    const match = /^--([a-z-]+)(?:=(.*))?$/.exec(arg);
    if (!match) {
      problems.push(`unexpected argument "${arg}"`);
      continue;
    }
    const name = /** @type {string} */ (match[1]);
    let value = match[2];
    const next = argv[i + 1];
    if (value === undefined && next !== undefined && !next.startsWith('--')) {
      value = next;
      i += 1;
    }
    flags[name] = value ?? true;
  }
  if (flags['help']) return 'help';
  const known = new Set([
    'duration',
    'rounds',
    'connections',
    'login-connections',
    'warmup',
    'soak',
    'out',
    'smoke',
    'no-build',
    'no-readme',
    'server',
    'algorithms',
    'no-algorithms',
  ]);
  for (const name of Object.keys(flags)) if (!known.has(name)) problems.push(`unknown option --${name}`);

  const smoke = flags['smoke'] === true || env['BENCH_SMOKE'] === '1';
  /**
   * @param {string} flag
   * @param {string} key
   * @param {number} fallback
   * @param {number} min
   * @param {boolean} [integer]
   */
  const num = (flag, key, fallback, min, integer = false) => {
    const raw = flags[flag] ?? env[key];
    if (raw === undefined || raw === '') return fallback;
    const n = raw === true ? NaN : Number(raw);
    if (!Number.isFinite(n) || n < min || (integer && !Number.isInteger(n))) {
      problems.push(`--${flag} (${key}) must be ${integer ? 'a whole number' : 'a number'} of at least ${min} (got "${String(raw)}")`);
      return fallback;
    }
    return n;
  };
  const soakRaw = flags['soak'] ?? env['BENCH_SOAK'];
  const soak = soakRaw === true ? 60 : num('soak', 'BENCH_SOAK', 0, 0);
  const outRaw = flags['out'] ?? env['BENCH_OUT'];
  if (outRaw === true) problems.push('--out needs a directory');
  const out = typeof outRaw === 'string' && outRaw !== '' ? path.resolve(outRaw) : defaultOut;
  const serverRaw = flags['server'];
  if (serverRaw === true) problems.push('--server needs a file');
  const server = typeof serverRaw === 'string' ? path.resolve(serverRaw) : undefined;
  if (flags['algorithms'] !== undefined && flags['algorithms'] !== true) problems.push('--algorithms takes no value');
  let algorithms = ALGORITHM_ROWS_BY_DEFAULT;
  if (env['BENCH_ALGORITHMS'] !== undefined && env['BENCH_ALGORITHMS'] !== '') algorithms = env['BENCH_ALGORITHMS'] === '1';
  if (flags['algorithms'] === true) algorithms = true;
  if (flags['no-algorithms'] === true) algorithms = false;
  const options = {
    duration: num('duration', 'BENCH_DURATION', smoke ? 1 : 6, 1),
    rounds: num('rounds', 'BENCH_ROUNDS', smoke ? 1 : 3, 1, true),
    connections: num('connections', 'BENCH_CONNECTIONS', smoke ? 10 : 50, 1, true),
    loginConnections: num('login-connections', 'BENCH_LOGIN_CONNECTIONS', smoke ? 2 : 4, 1, true),
    warmup: num('warmup', 'BENCH_WARMUP', smoke ? 0 : 2, 0),
    soak,
    out,
    smoke,
    build: flags['no-build'] !== true && server === undefined,
    readme: flags['no-readme'] !== true && !smoke && out === defaultOut && server === undefined,
    server,
    algorithms,
  };
  if (problems.length > 0) throw new Error(`${problems.join('\n')}\n\n${USAGE}`);
  return options;
}

module.exports = { parseOptions, USAGE };
