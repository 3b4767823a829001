'use strict';
// @ts-check
/**
 * `node bench/login-burst.js [--junk 150] [--rounds 3] [--samples 10]`
 *
 * Another user's login latency while one client sends a burst of junk logins (issue #11): the
 * server runs as `node dist/server.js` (production, SQLite, argon2 at its defaults, TRUST_PROXY so
 * each client has its own address in X-Forwarded-For). Each round fires `--junk` junk logins at
 * once from one address, and meanwhile `--samples` logins of a real user, one after another,
 * from another address; it prints each round and the median and max of the user's latency.
 * Build first (`npm run build`). A measurement, not a test: the machine may be shared and noisy.
 */
const { median, round } = require('./lib/load');
const { sleep, startServer } = require('./lib/processes');

async function main() {
  const args = process.argv.slice(2);
  const arg = (/** @type {string} */ name, /** @type {string} */ fallback) => {
    const i = args.indexOf(`--${name}`);
    return Number(i === -1 ? fallback : args[i + 1]);
  };
  const junk = arg('junk', '150');
  const rounds = arg('rounds', '3');
  const samples = arg('samples', '10');
  const server = await startServer({ name: 'server', logLevel: 'warn', env: { TRUST_PROXY: 'true' } });
  /** @param {string} from @param {object} body */
  const post = async (from, body) => {
    const started = performance.now();
    const res = await fetch(`${server.url}/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-forwarded-for': from },
      body: JSON.stringify(body),
    });
    await res.arrayBuffer();
    return { status: res.status, ms: performance.now() - started };
  };
  try {
    // Quiet first: the user's login alone.
    const quiet = [];
    for (let i = 0; i < samples; i += 1) quiet.push((await post('203.0.113.1', server.credentials)).ms);
    console.log(`quiet: median ${round(median(quiet), 1)} ms, max ${round(Math.max(...quiet), 1)} ms`);
    const all = [];
    for (let r = 1; r <= rounds; r += 1) {
      const burst = Promise.all(Array.from({ length: junk }, (_, i) => post('198.51.100.66', { name: `junk${i}`, password: 'junk-password' })));
      const mine = [];
      for (let i = 0; i < samples; i += 1) {
        const res = await post('203.0.113.1', server.credentials);
        if (res.status !== 200) throw new Error(`the user's login answered ${res.status}`);
        mine.push(res.ms);
      }
      const answers = await burst;
      const byStatus = /** @type {Record<number, number>} */ ({});
      for (const a of answers) byStatus[a.status] = (byStatus[a.status] ?? 0) + 1;
      all.push(...mine);
      console.log(
        `round ${r}: user's login median ${round(median(mine), 1)} ms, max ${round(Math.max(...mine), 1)} ms; junk answers ${JSON.stringify(byStatus)}`,
      );
      await sleep(1_000);
    }
    console.log(`all rounds: user's login during the burst: median ${round(median(all), 1)} ms, max ${round(Math.max(...all), 1)} ms (target: under 1000 ms)`);
  } finally {
    await server.stop();
  }
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
