import pg from 'pg';
import { faultToolsPresent } from '../support/fault-tools';
import { startLoad } from '../support/load';
import { type PgCluster, startPgCluster } from '../support/pg-cluster';
import { type RunningServer, startServer } from '../support/server-process';
import { ADMIN_PASSWORD, bearer, call, type Deployment, deploy, json, login, serverEnv, sleep } from './support';

/**
 * Instances coming and going: several starting at once on an empty database, one killed
 * outright while its answer is on the way, one told to stop under load.
 */
jest.setTimeout(180_000);

function report(name: string, figures: Record<string, unknown>): void {
  process.stdout.write(`[faults] ${name}: ${JSON.stringify(figures)}\n`);
}

(faultToolsPresent() ? describe : describe.skip)('instances starting and stopping', () => {
  describe('concurrent cold starts', () => {
    let cluster: PgCluster;
    beforeAll(async () => {
      cluster = await startPgCluster({ settings: { synchronous_commit: true } });
    });
    afterAll(async () => {
      await cluster?.destroy();
    });

    test('when three instances start at the same moment on an empty database, then all come up, with one admin whose password works everywhere', async () => {
      const TRIALS = 5;
      const INSTANCES = 3;
      const upPerTrial: number[] = [];
      for (let trial = 0; trial < TRIALS; trial += 1) {
        const url = await cluster.createDatabase();
        const started = await Promise.allSettled(Array.from({ length: INSTANCES }, () => startServer(serverEnv(url))));
        const servers = started.filter((s): s is PromiseFulfilledResult<RunningServer> => s.status === 'fulfilled').map((s) => s.value);
        try {
          upPerTrial.push(servers.length);
          const failures = started.filter((s): s is PromiseRejectedResult => s.status === 'rejected').map((s) => String(s.reason).slice(0, 600));
          expect([trial, failures]).toEqual([trial, []]);
          for (const s of servers) expect((await call(`${s.url}/login`, json({ name: 'admin', password: ADMIN_PASSWORD }))).status).toBe(200);
          const db = new pg.Client({ connectionString: url });
          await db.connect();
          try {
            const users = await db.query('select name, role from users');
            expect(users.rows).toEqual([{ name: 'admin', role: 'admin' }]);
          } finally {
            await db.end();
          }
          // One of them made the admin; the others said another process had.
          const made = servers.filter((s) => s.stdout().includes('"event":"admin_created"')).length;
          const found = servers.filter((s) => s.stdout().includes('"event":"admin_exists"')).length;
          expect(made).toBe(1);
          expect(made + found).toBeLessThanOrEqual(INSTANCES);
        } finally {
          for (const s of servers) await s.stop('SIGKILL');
        }
      }
      report('concurrent cold starts', { trials: TRIALS, instances: INSTANCES, upPerTrial });
    });
  });

  describe('an instance killed or stopped under load', () => {
    let d: Deployment;
    beforeAll(async () => {
      d = await deploy({ instances: 3, redis: true });
    });
    afterAll(async () => {
      await d?.destroy();
    });

    test('when an instance is killed (SIGKILL) while refreshing, then a retry on another instance gets the same session going, and the others never notice', async () => {
      const [victim, a, b] = d.servers as [RunningServer, RunningServer, RunningServer];
      const s = await login(a.url);
      const load = startLoad(
        [
          () => ({ url: `${a.url}/user`, headers: { authorization: `Bearer ${s.access}` } }),
          () => ({ url: `${b.url}/user`, headers: { authorization: `Bearer ${s.access}` } }),
        ],
        {
          connections: 4,
          rate: 200,
          maxRequests: 2_000,
          maxDurationMs: 4_000,
        },
      );
      // The refresh reaches the victim; it dies before (or just after) answering: the answer is lost.
      const sent = call(`${victim.url}/refresh`, json({ refresh_token: s.refresh }));
      await sleep(5);
      victim.child.kill('SIGKILL');
      const lost = await sent;
      const retried = await call(`${a.url}/refresh`, json({ refresh_token: s.refresh }));
      const report_ = await load.finished;
      expect(await victim.exited).toBe(null);

      // Committed or not on the victim, the retry gets a working pair for the same session.
      expect(retried.status).toBe(200);
      expect((await call(`${b.url}/user`, bearer(retried.body['access_token'] as string))).status).toBe(200);
      expect((await call(`${b.url}/refresh`, json({ refresh_token: retried.body['refresh_token'] }))).status).toBe(200);
      // The other instances answered everything, every time.
      expect(report_.summary().byOutcome).toEqual({ '200': report_.records.length });
      report('SIGKILL of one instance mid-refresh', { lostAnswer: lost.status, retry: retried.status, requestsToOthers: report_.records.length });
      // The victim is gone for good; the rest of the file runs without it.
      d.servers.splice(0, 1);
    });

    test('when an instance gets SIGTERM under load, then every request it accepted is answered: no connection is reset', async () => {
      const target = d.servers[0] as RunningServer;
      const s = await login(target.url);
      const load = startLoad(
        [
          () => ({ url: `${target.url}/user`, headers: { authorization: `Bearer ${s.access}` }, label: 'user' }),
          () => ({ url: `${target.url}/readyz`, label: 'ready' }),
          () => ({ method: 'POST', url: `${target.url}/refresh`, body: { refresh_token: 'not-a-token' }, label: 'refresh' }),
        ],
        { connections: 8, concurrency: 8, maxRequests: 20_000, maxDurationMs: 3_000, timeoutMs: 10_000 },
      );
      await sleep(1_000);
      const signalledAt = Date.now();
      target.child.kill('SIGTERM');
      const code = await target.exited;
      const result = await load.finished;
      expect(code).toBe(0);
      const after = result.between(signalledAt, Number.POSITIVE_INFINITY);
      const outcomes = result.summary().byOutcome;
      // Refused connections after the listener closed are expected; resets and hangs are not.
      const lostInFlight = result.records.filter((r) => r.error !== undefined && r.error !== 'ECONNREFUSED');
      expect(lostInFlight.map((r) => `${r.label} ${r.error}`)).toEqual([]);
      expect(result.records.filter((r) => r.status !== undefined && ![200, 401, 503].includes(r.status))).toEqual([]);
      report('SIGTERM under load', { requests: result.records.length, afterSignal: after.length, outcomes, resets: outcomes['ECONNRESET'] ?? 0 });
      d.servers.splice(0, 1);
    });
  });
});
