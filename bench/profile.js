'use strict';
// @ts-check
/**
 * `node bench/profile.js [--duration 20] [--connections 50] [--scenario valid|invalid] [--log-level info] [--keep] [--top 25]
 *   [--server dist/server.js] [--peer]`
 * `node bench/profile.js --analyse <file.cpuprofile>`
 *
 * Runs the built server under `node --cpu-prof`, puts GET /user under load for --duration
 * seconds, stops it (SIGTERM, so the profile is written) and prints where the time went: self
 * and inclusive time by package, and the heaviest functions. Build first (npm run build).
 * --keep leaves the .cpuprofile in a temp folder for Chrome DevTools. --peer profiles the fastify
 * equal-feature peer (bench/fastify-peer.js) instead, with a token of the server (which then runs
 * without the profiler), for a side-by-side reading.
 */
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { load, round } = require('./lib/load');
const { sleep, startPeer, startServer, tamper } = require('./lib/processes');

/**
 * @typedef {{ id: number, callFrame: { functionName: string, url: string, lineNumber: number }, hitCount?: number, children?: number[] }} ProfileNode
 * @typedef {{ nodes: ProfileNode[], samples: number[], timeDeltas: number[] }} Profile
 */

/**
 * The bucket a frame is counted in: an npm package, a file of the server, a part of Node, or one
 * of V8's pseudo-frames ((garbage collector), (program), (idle)).
 * @param {ProfileNode['callFrame']} frame
 */
function bucketOf(frame) {
  const { url, functionName } = frame;
  if (!url) return functionName.startsWith('(') ? functionName : '(native)';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1];
  const own = /\/dist\/(.+)$/.exec(url);
  if (own) return `server: ${own[1]}`;
  const bench = /\/bench\/(.+)$/.exec(url);
  if (bench) return `bench: ${bench[1]}`;
  if (url.startsWith('node:')) return url.replace(/^node:internal\/(?:deps\/)?/, 'node:');
  return url;
}

/**
 * Self and inclusive sample time per bucket and per function.
 * @param {Profile} profile
 */
function analyse(profile) {
  /** @type {Map<number, ProfileNode>} */
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  /** @type {Map<number, number>} */
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  /** @type {Map<string, number>} */ const selfBucket = new Map();
  /** @type {Map<string, number>} */ const totalBucket = new Map();
  /** @type {Map<string, number>} */ const selfFn = new Map();
  /** @type {Map<string, number>} */ const totalFn = new Map();
  const add = (/** @type {Map<string, number>} */ m, /** @type {string} */ k, /** @type {number} */ v) => m.set(k, (m.get(k) ?? 0) + v);
  let all = 0;
  let idle = 0;
  profile.samples.forEach((id, i) => {
    const dt = profile.timeDeltas[i] ?? 0;
    const node = byId.get(id);
    if (!node) return;
    all += dt;
    if (node.callFrame.functionName === '(idle)') idle += dt;
    const fnKey = (/** @type {ProfileNode} */ n) => `${n.callFrame.functionName || '(anonymous)'} ${bucketOf(n.callFrame)}:${n.callFrame.lineNumber + 1}`;
    add(selfBucket, bucketOf(node.callFrame), dt);
    add(selfFn, fnKey(node), dt);
    const seenBuckets = new Set();
    const seenFns = new Set();
    for (let cur = /** @type {ProfileNode | undefined} */ (node); cur; cur = byId.get(parent.get(cur.id) ?? -1)) {
      seenBuckets.add(bucketOf(cur.callFrame));
      seenFns.add(fnKey(cur));
    }
    for (const b of seenBuckets) add(totalBucket, b, dt);
    for (const f of seenFns) add(totalFn, f, dt);
  });
  return { all, idle, selfBucket, totalBucket, selfFn, totalFn };
}

/**
 * @param {string} title
 * @param {Map<string, number>} map
 * @param {number} busy
 * @param {number} top
 */
function printTop(title, map, busy, top) {
  process.stdout.write(`\n${title} (% of non-idle time)\n`);
  const rows = [...map.entries()]
    .filter(([k]) => k !== '(idle)' && k !== '(root)')
    .sort((a, b) => b[1] - a[1])
    .slice(0, top);
  for (const [k, v] of rows) process.stdout.write(`${String(round((v / busy) * 100, 1)).padStart(6)}%  ${k}\n`);
}

/**
 * @param {string} file
 * @param {number} top
 */
function report(file, top) {
  const profile = /** @type {Profile} */ (JSON.parse(fs.readFileSync(file, 'utf8')));
  const a = analyse(profile);
  const busy = a.all - a.idle;
  process.stdout.write(`profile: ${round(a.all / 1e6, 1)} s sampled (warm-up and start-up included), ${round((a.idle / a.all) * 100, 1)}% idle\n`);
  printTop('Self time by package or file', a.selfBucket, busy, top);
  printTop('Inclusive time by package or file', a.totalBucket, busy, top);
  printTop('Self time by function', a.selfFn, busy, top);
  printTop('Inclusive time by function', a.totalFn, busy, top);
}

async function main() {
  const args = process.argv.slice(2);
  const arg = (/** @type {string} */ name, /** @type {string} */ fallback) => {
    const i = args.indexOf(`--${name}`);
    return i === -1 ? fallback : (args[i + 1] ?? fallback);
  };
  const top = Number(arg('top', '25'));
  const existing = arg('analyse', '');
  if (existing) {
    report(existing, top);
    return;
  }
  const duration = Number(arg('duration', '20'));
  const connections = Number(arg('connections', '50'));
  const scenario = arg('scenario', 'valid');
  const profDir = fs.mkdtempSync(path.join(os.tmpdir(), 'auth-cpuprof-'));
  const profArgs = ['--cpu-prof', `--cpu-prof-dir=${profDir}`, '--cpu-prof-interval=250'];
  const peerMode = args.includes('--peer');
  const server = await startServer({
    name: 'server',
    logLevel: arg('log-level', 'info'),
    nodeArgs: peerMode ? [] : profArgs,
    script: path.resolve(arg('server', 'dist/server.js')),
  });
  /** @type {Awaited<ReturnType<typeof startPeer>> | undefined} */
  let peer;
  let result;
  try {
    if (peerMode) peer = await startPeer(server, arg('log-level', 'info'), profArgs);
    const target = peer ?? server;
    const token = scenario === 'invalid' ? tamper(server.token) : server.token;
    const spec = {
      url: `${target.url}/user`,
      method: /** @type {const} */ ('GET'),
      headers: { authorization: `Bearer ${token}` },
      connections,
      expect: scenario === 'invalid' ? 401 : 200,
    };
    await load({ ...spec, duration: 3 });
    result = await load({ ...spec, duration });
  } finally {
    await peer?.stop();
    await server.stop();
  }
  await sleep(200);
  const file = fs.readdirSync(profDir).find((f) => f.endsWith('.cpuprofile'));
  if (!file) throw new Error('no .cpuprofile was written');
  process.stdout.write(
    `${peerMode ? 'fastify peer: ' : ''}GET /user (${scenario} token) for ${duration} s at ${connections} connections: ${result.reqPerSec} req/s, p50 ${result.p50} ms, p99 ${result.p99} ms, ${result.unexpected} unexpected\n`,
  );
  report(path.join(profDir, file), top);
  if (args.includes('--keep')) process.stdout.write(`\nprofile kept: ${path.join(profDir, file)}\n`);
  else fs.rmSync(profDir, { recursive: true, force: true });
}

main().catch((error) => {
  process.stderr.write(`profile failed: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
