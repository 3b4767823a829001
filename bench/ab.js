'use strict';
// @ts-check
/**
 * `node bench/ab.js --a <server.js> --b <server.js> [--duration 5] [--rounds 5] [--connections 50]
 *   [--scenario valid|invalid] [--log-level info] [--log-level-b <level>]`
 *
 * Compares two builds of the server (say a copy of dist/ from before a change, and dist/ now) on
 * GET /user in interleaved rounds (A B A B ...) and prints each round and the median ratio B/A.
 * A copy of dist/ runs from anywhere its `..` holds `public`, `openapi.yaml` and `node_modules`
 * (copies or links). With --log-level-b, B runs at another LOG_LEVEL (A and B may then be the
 * same build, to measure what logging costs).
 */
const path = require('node:path');
const { load, median, round } = require('./lib/load');
const { sleep, startServer, tamper } = require('./lib/processes');

async function main() {
  const args = process.argv.slice(2);
  const arg = (/** @type {string} */ name, /** @type {string | undefined} */ fallback) => {
    const i = args.indexOf(`--${name}`);
    const v = i === -1 ? fallback : args[i + 1];
    if (v === undefined) throw new Error(`--${name} is required`);
    return v;
  };
  const a = path.resolve(arg('a', undefined));
  const b = path.resolve(arg('b', undefined));
  const duration = Number(arg('duration', '5'));
  const rounds = Number(arg('rounds', '5'));
  const connections = Number(arg('connections', '50'));
  const scenario = arg('scenario', 'valid');
  const logLevel = arg('log-level', 'info');
  const logLevelB = arg('log-level-b', logLevel);
  const servers = [];
  try {
    servers.push(await startServer({ name: 'A', logLevel, script: a }));
    servers.push(await startServer({ name: 'B', logLevel: logLevelB, script: b }));
    /** @type {Record<string, number[]>} */
    const rates = { A: [], B: [] };
    /** @type {Record<string, number[]>} */
    const cpu = { A: [], B: [] };
    const run = async (/** @type {Awaited<ReturnType<typeof startServer>>} */ s, /** @type {number} */ seconds) => {
      const token = scenario === 'invalid' ? tamper(s.token) : s.token;
      return load({
        url: `${s.url}/user`,
        method: 'GET',
        headers: { authorization: `Bearer ${token}` },
        connections,
        duration: seconds,
        expect: scenario === 'invalid' ? 401 : 200,
      });
    };
    for (const s of servers) await run(s, 2);
    for (let r = 1; r <= rounds; r += 1) {
      const line = [];
      for (const s of servers) {
        const cpuBefore = s.cpu() ?? NaN;
        const result = await run(s, duration);
        const us = round((((s.cpu() ?? NaN) - cpuBefore) / result.requests) * 1e6, 1);
        if (result.unexpected > 0) throw new Error(`${s.name}: ${result.unexpected} unexpected answers ${JSON.stringify(result.statuses)}`);
        rates[s.name]?.push(result.reqPerSec);
        cpu[s.name]?.push(us);
        line.push(`${s.name} ${result.reqPerSec} req/s (p50 ${result.p50} ms, p99 ${result.p99} ms, ${us} µs CPU/req)`);
        await sleep(250);
      }
      process.stdout.write(`round ${r}: ${line.join(', ')}\n`);
    }
    const ratios = (rates['B'] ?? []).map((x, i) => x / (rates['A']?.[i] ?? NaN));
    process.stdout.write(
      `GET /user (${scenario} token), LOG_LEVEL=${logLevel}${logLevelB === logLevel ? '' : ` (B: ${logLevelB})`}: median A ${median(rates['A'] ?? [])} req/s, B ${median(rates['B'] ?? [])} req/s; ` +
        `B/A per round ${ratios.map((x) => round(x, 2)).join(' ')}, median ${round(median(ratios), 2)}\n`,
    );
    process.stdout.write(`server CPU per request: median A ${median(cpu['A'] ?? [])} µs, B ${median(cpu['B'] ?? [])} µs\n`);
  } finally {
    await Promise.all(servers.map((s) => s.stop()));
  }
}

main().catch((error) => {
  process.stderr.write(`ab failed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
