'use strict';
// @ts-check
// autocannon ships no types.
/** @type {(opts: object, done: (error: Error | null, result: any) => void) => unknown} */
// @ts-ignore
const autocannon = require('autocannon');

/**
 * @typedef {object} LoadSpec
 * @property {string} url
 * @property {'GET' | 'POST'} method
 * @property {Record<string, string>} [headers]
 * @property {string} [body]
 * @property {number} connections
 * @property {number} duration seconds
 * @property {number} expect the status every answer should have
 */

/**
 * @typedef {object} LoadResult
 * @property {number} reqPerSec responses per second over the whole run
 * @property {number} p50 latency, ms
 * @property {number} p99 latency, ms
 * @property {number} requests
 * @property {number} unexpected answers with another status, plus connection errors and timeouts
 * @property {Record<string, number>} statuses count per status code
 */

/**
 * Runs autocannon against one endpoint and reduces its result to what the report needs.
 * @param {LoadSpec} spec
 * @returns {Promise<LoadResult>}
 */
function load(spec) {
  return new Promise((resolve, reject) => {
    autocannon(
      {
        url: spec.url,
        method: spec.method,
        headers: spec.headers ?? {},
        ...(spec.body === undefined ? {} : { body: spec.body }),
        connections: spec.connections,
        duration: spec.duration,
        timeout: 30,
      },
      (/** @type {Error | null} */ error, /** @type {any} */ result) => {
        if (error) return reject(error);
        /** @type {Record<string, number>} */
        const statuses = {};
        for (const [code, { count }] of Object.entries(result.statusCodeStats ?? {})) statuses[code] = Number(count);
        const requests = Object.values(statuses).reduce((a, b) => a + b, 0);
        const expected = statuses[String(spec.expect)] ?? 0;
        resolve({
          reqPerSec: round(requests / result.duration, 1),
          p50: result.latency.p50,
          p99: result.latency.p99,
          requests,
          unexpected: requests - expected + result.errors + result.timeouts,
          statuses,
        });
      },
    );
  });
}

/**
 * @param {number} n
 * @param {number} digits
 */
function round(n, digits) {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

/**
 * The median; the mean of the middle two for an even count.
 * @param {number[]} values
 */
function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  if (sorted.length === 0) return NaN;
  // Each cast stands alone: Prettier moves a JSDoc cast that opens a parenthesised sum onto the whole sum.
  const upper = /** @type {number} */ (sorted[mid]);
  if (sorted.length % 2 === 1) return upper;
  const lower = /** @type {number} */ (sorted[mid - 1]);
  return (lower + upper) / 2;
}

module.exports = { load, median, round };
