'use strict';
// @ts-check
/**
 * The signing-algorithm rows of the bench (issue #13), in one place: each entry starts one more
 * server with `env` on top of the bench's own environment (a key set to undefined is left out),
 * and measures the scenarios in `rows` on it.
 *
 * The server must really sign with `alg`: the bench reads the `alg` of the token it gets at
 * start-up and stops, naming the row, when the server refused the environment (exited) or
 * ignored it (signed with another algorithm). It never skips a row or reports a number for an
 * algorithm the server did not use.
 *
 * Until the server supports JWT_ALGORITHM the rows stay out of a default run: `--algorithms`
 * (or BENCH_ALGORITHMS=1) adds them. Once it does, set ALGORITHM_ROWS_BY_DEFAULT to true (and
 * add here any key variables the server then asks for, in `env`).
 */

/** Whether `npm run bench` runs the rows below without `--algorithms`. */
const ALGORITHM_ROWS_BY_DEFAULT = true;

/**
 * @typedef {object} AlgorithmServer
 * @property {string} alg the `alg` the server's tokens must carry
 * @property {Record<string, string | undefined>} env
 * @property {('user' | 'login')[]} rows GET /user with a valid token, POST /login
 */

/** @type {readonly AlgorithmServer[]} */
const ALGORITHM_SERVERS = Object.freeze([
  { alg: 'HS256', env: { JWT_ALGORITHM: 'HS256' }, rows: ['login'] },
  { alg: 'ES256', env: { JWT_ALGORITHM: 'ES256' }, rows: ['user', 'login'] },
  { alg: 'EdDSA', env: { JWT_ALGORITHM: 'EdDSA' }, rows: ['user', 'login'] },
]);

/**
 * The scenario id of a row.
 * @param {'user' | 'login'} row
 * @param {string} alg
 */
const rowId = (row, alg) => `${row}_${alg.toLowerCase()}`;

// Each row is one scenario id: two entries measuring the same row of one algorithm would merge.
{
  const ids = ALGORITHM_SERVERS.flatMap(({ alg, rows }) => rows.map((row) => rowId(row, alg)));
  const twice = ids.filter((id, i) => ids.indexOf(id) !== i);
  if (twice.length > 0) throw new Error(`bench/lib/algorithms.js: rows ${twice.join(', ')} appear twice`);
}

/** @param {Record<string, string | undefined>} env */
const describeEnv = (env) =>
  Object.entries(env)
    .map(([k, v]) => (v === undefined ? `no ${k}` : `${k}=${v}`))
    .join(' ');

module.exports = { ALGORITHM_ROWS_BY_DEFAULT, ALGORITHM_SERVERS, rowId, describeEnv };
