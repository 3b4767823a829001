'use strict';
// @ts-check
const fs = require('node:fs');
const { median } = require('./load');

const START = '<!-- bench:start -->';
const END = '<!-- bench:end -->';

/** @param {number | null | undefined} n */
const num = (n) => (n === null || n === undefined || Number.isNaN(n) ? 'n/a' : String(n));

/** @param {string} status */
const mark = (status) => {
  if (status === 'met') return '✅ met';
  if (status === 'missed') return '❌ missed';
  return status;
};

/**
 * The Markdown summary of a run: machine, settings, one row per scenario, the targets with a
 * met/missed mark, memory and the cost of logging.
 * @param {any} report the object bench/run.js writes as latest.json
 * @returns {string}
 */
function renderMarkdown(report) {
  const { machine: m, options: o } = report;
  const lines = [];
  lines.push(
    `Machine: ${m.cpu}, ${m.cores} cores, ${m.memoryGb} GB RAM, ${m.platform}, Node ${m.node}. Run ${report.date.slice(0, 16).replace('T', ' ')} UTC.`,
  );
  lines.push('');
  lines.push(
    `Command: \`npm run bench -- --duration ${o.duration} --rounds ${o.rounds} --connections ${o.connections} --login-connections ${o.loginConnections}${o.soak ? ` --soak ${o.soak}` : ''}${o.smoke ? ' --smoke' : ''}${o.algorithms ? ' --algorithms' : ''}${o.server ? ' --server <another build>' : ''}\`` +
      ` (${o.rounds} interleaved round${o.rounds === 1 ? '' : 's'} of ${o.duration} s per scenario, ${o.warmup > 0 ? `after ${o.warmup} s of warm-up each` : 'no warm-up'}; medians of the rounds).`,
  );
  lines.push(
    `The server runs as \`node dist/server.js\` with NODE_ENV=production, SQLite, and the default LOG_LEVEL=info (one JSON line per request, stdout piped to the bench and discarded); ` +
      `LOGIN_RATE_IP and LOGIN_RATE_NAME are raised to ${report.setup.loginRateLimits} so the login rows measure hashing, not 429s.`,
  );
  lines.push(
    'The baseline is a bare Koa route with no auth, logging or headers (`bench/bare-koa.js`); the peer is the same `GET /user` on fastify 5 with @fastify/jwt, @fastify/helmet and pino, ' +
      'with the same key, claim checks, revocation lookup, headers, request id, request line and JSON (`bench/fastify-peer.js`; what is equal and what is not: `bench/NOTES.md`). ' +
      'All of them run in the same interleaved rounds.',
  );
  const algorithms = report.setup.algorithms ?? [];
  if (algorithms.length > 0) {
    lines.push(
      `Signing-algorithm rows: one more server each, started with ${algorithms.map((/** @type {any} */ a) => `\`${a.env}\``).join(', ')}; the bench checked that each signed its tokens with that algorithm.`,
    );
  }
  if (o.smoke) lines.push('', '**Smoke run**: too short to mean anything; it only shows the bench works.');
  lines.push('');
  lines.push('| Scenario | req/s | p50 ms | p99 ms | CPU µs/response | RSS after, MB | Unexpected answers |');
  lines.push('|---|--:|--:|--:|--:|--:|--:|');
  for (const s of Object.values(report.scenarios)) {
    lines.push(`| ${s.title} | ${num(s.reqPerSec)} | ${num(s.p50)} | ${num(s.p99)} | ${num(s.cpuUs)} | ${num(s.rssMb)} | ${s.unexpected} |`);
  }
  lines.push('');
  lines.push('| Target (ratios from this run, median of rounds) | Value | Goal | |');
  lines.push('|---|--:|--:|---|');
  for (const t of report.targets) {
    const value =
      t.id === 'rss_growth' && !Number.isNaN(t.value)
        ? `${num(Math.round(t.value * 1000) / 10)}%`
        : t.id.endsWith('rss')
          ? `${num(t.value)} MB`
          : `${num(t.value)}x`;
    lines.push(`| ${t.title} | ${t.status === 'not run' ? 'n/a' : value} | ${t.goal} | ${mark(t.status)}${t.note ? `: ${t.note}` : ''} |`);
  }
  const spread = (/** @type {number[] | undefined} */ values) =>
    values && values.length > 1 ? ` (rounds ${num(Math.min(...values))} to ${num(Math.max(...values))})` : '';
  const r = report.ratios;
  const med = (/** @type {number[] | undefined} */ values) => (values && values.length > 0 ? Math.round(median(values) * 1000) / 1000 : null);
  lines.push('');
  lines.push(
    `Ratios of GET /user, valid token (median of the per-round ratios): server / bare Koa ${num(med(r.userVsBare))}x${spread(r.userVsBare)}; ` +
      `server / fastify equal-feature peer ${num(med(r.userVsPeer))}x${spread(r.userVsPeer)}; peer / bare Koa ${num(med(r.peerVsBare))}x${spread(r.peerVsBare)}. ` +
      `CPU per response, peer / server: ${num(med(r.peerCpuVsServer))}x${spread(r.peerCpuVsServer)} (above 1: the server spends less CPU per answer).`,
  );
  const algRatios = Object.entries(r.algorithms ?? {});
  if (algRatios.length > 0) {
    lines.push(
      `Algorithms against HS256 (median of the per-round ratios of req/s): ${algRatios.map(([id, values]) => `${id} ${num(med(/** @type {number[]} */ (values)))}x`).join(', ')}.`,
    );
  }
  const mem = report.memory;
  lines.push('');
  lines.push(
    `Memory (server, LOG_LEVEL=info; RSS read ${report.setup.settleMs / 1000} s after the load stops, except the RSS column, read as each scenario ends): idle ${num(mem.idle.server)} MB, after warm-up ${num(mem.afterWarmup.server)} MB, after the rounds ${num(mem.afterRounds)} MB` +
      `${mem.afterSoak ? `, after a ${mem.afterSoak.seconds} s soak ${num(mem.afterSoak.rssMb)} MB` : ''}. Idle: bare Koa ${num(mem.idle.bare)} MB, fastify peer ${num(mem.idle.peer)} MB.`,
  );
  const log = report.logging;
  const { info, warn } = log.cpuUs;
  const extra =
    typeof info === 'number' && typeof warn === 'number' && warn > 0 ? ` (${info >= warn ? '+' : ''}${Math.round((info / warn - 1) * 1000) / 10}%)` : '';
  lines.push(
    `Logging: GET /user costs ${num(info)} µs of CPU per response at LOG_LEVEL=info, with its one request line of about ${num(log.logBytesPerRequest)} bytes, against ${num(warn)} µs at LOG_LEVEL=warn${extra}; ` +
      `its rate at info is ${num(log.infoVsWarn)}x the rate at warn (median of the per-round ratios). The fastify peer writes about ${num(log.peerLogBytesPerRequest)} bytes of log a request.`,
  );
  lines.push('');
  lines.push(
    'CPU µs/response is the CPU time of the answering process (all its threads, from /proc) over the responses it sent: steadier than req/s on a busy machine, since it does not count time spent waiting for a core. ' +
      'The machine may be shared and noisy: compare the ratios within one run, not absolute figures across runs.',
  );
  return `${lines.join('\n')}\n`;
}

/**
 * Replaces what is between the bench markers of a README with `markdown`.
 * @param {string} file
 * @param {string} markdown
 * @returns {boolean} false when the markers are missing
 */
function updateReadme(file, markdown) {
  const text = fs.readFileSync(file, 'utf8');
  const start = text.indexOf(START);
  const end = text.indexOf(END);
  if (start === -1 || end === -1 || end < start) return false;
  fs.writeFileSync(file, `${text.slice(0, start + START.length)}\n${markdown}${text.slice(end)}`);
  return true;
}

module.exports = { renderMarkdown, updateReadme };
