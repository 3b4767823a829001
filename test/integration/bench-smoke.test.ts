import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { tempDir } from '../support/server-process';

const ROOT = path.join(__dirname, '..', '..');
const SCENARIOS = ['bare_user', 'user_valid', 'user_valid_warn', 'user_invalid', 'login', 'storm_user', 'storm_login'];

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
    expect(report.scenarios.user_invalid.rounds[0].statuses).toEqual({ '401': expect.any(Number) });
    expect(report.scenarios.login.rounds[0].statuses).toEqual({ '200': expect.any(Number) });
    expect(typeof report.memory.idle.server).toBe('number');
    expect(report.targets.map((t: { id: string; status: string }) => [t.id, t.status])).toEqual([
      ['user_vs_bare', 'not judged (smoke run)'],
      ['storm_vs_quiet', 'not judged (smoke run)'],
      ['idle_rss', 'not judged (smoke run)'],
      ['rss_growth', 'not run'],
    ]);
    expect(report.machine).toMatchObject({ cores: expect.any(Number), node: process.version });

    const markdown = fs.readFileSync(path.join(out, 'latest.md'), 'utf8');
    for (const id of SCENARIOS) expect(markdown).toContain(`| ${report.scenarios[id].title} |`);
    expect(markdown).toContain('**Smoke run**');
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
