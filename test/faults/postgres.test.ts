import pg from 'pg';
import { faultToolsPresent } from '../support/fault-tools';
import { badReplies, bearer, BOUNDS, call, type Deployment, deploy, HANG_BOUND_MS, json, login, type Reply, sleep, within } from './support';

/**
 * Three server processes on one PostgreSQL cluster of the test's own (and one Redis), under a
 * bounded load, while PostgreSQL is stopped, crashed and frozen. Nothing here touches the
 * machine's own services.
 */
jest.setTimeout(120_000);

(faultToolsPresent() ? describe : describe.skip)('PostgreSQL going away under load', () => {
  let d: Deployment;
  beforeAll(async () => {
    d = await deploy({ instances: 3, redis: true });
  });
  afterAll(async () => {
    await d?.destroy();
  });
  afterEach(() => {
    // No instance ever exits because the database went away.
    expect(d.exited()).toEqual([]);
  });

  interface Workload {
    user: Reply[];
    refresh: Reply[];
    login: Reply[];
    ready: (Reply & { at: number; instance: number })[];
    /** The last refresh token each refresh client holds, acknowledged by a 200. */
    chains: string[];
    stop(): Promise<void>;
  }

  /**
   * The load of a small deployment, bounded in time (the caller stops it) and rate: GET /user with
   * a valid token every 25 ms, two clients refreshing every 100 ms (each using the token its last
   * 200 gave, as a browser does), a login every 400 ms, and /readyz of each instance every 200 ms.
   * Requests go to the instances in turn, as a load balancer would send them.
   */
  async function startWorkload(): Promise<Workload> {
    const urls = d.servers.map((s) => s.url);
    const access = (await login(urls[0] as string)).access;
    const chains = [(await login(urls[1] as string)).refresh, (await login(urls[2] as string)).refresh];
    const w: Workload = { user: [], refresh: [], login: [], ready: [], chains, stop: async () => undefined };
    let running = true;
    const deadline = Date.now() + 60_000;
    const loop = async (everyMs: number, step: (i: number) => Promise<void>) => {
      for (let i = 0; running && Date.now() < deadline; i += 1) {
        const started = Date.now();
        await step(i);
        await sleep(Math.max(0, everyMs - (Date.now() - started)));
      }
    };
    const loops = [
      loop(25, async (i) => void w.user.push(await call(`${urls[i % urls.length]}/user`, bearer(access)))),
      ...chains.map((_, c) =>
        loop(100, async (i) => {
          const r = await call(`${urls[(i + c) % urls.length]}/refresh`, json({ refresh_token: w.chains[c] }));
          w.refresh.push(r);
          if (r.status === 200) w.chains[c] = r.body['refresh_token'] as string;
        }),
      ),
      loop(400, async (i) => void w.login.push(await call(`${urls[i % urls.length]}/login`, json({ name: 'admin', password: 'fault-suite-admin-password' })))),
      loop(200, async () => {
        await Promise.all(
          urls.map(async (u, instance) => {
            const at = Date.now();
            w.ready.push({ ...(await call(`${u}/readyz`)), at, instance });
          }),
        );
      }),
    ];
    w.stop = async () => {
      running = false;
      await Promise.all(loops);
    };
    return w;
  }

  /** After the store is back: how long until every instance answers a login again (ms from `since`). */
  async function recovery(since: number): Promise<number[]> {
    return Promise.all(
      d.servers.map(async (s) => {
        const took = await within(
          15_000,
          async () => (await call(`${s.url}/login`, json({ name: 'admin', password: 'fault-suite-admin-password' }))).status === 200,
        );
        return took < 0 ? -1 : Date.now() - since;
      }),
    );
  }

  function report(name: string, figures: Record<string, unknown>): void {
    process.stdout.write(`[faults] ${name}: ${JSON.stringify(figures)}\n`);
  }

  /** Every chain's last acknowledged token still refreshes: no acknowledged rotation was lost. */
  async function expectChainsIntact(w: Workload): Promise<void> {
    for (const token of w.chains) {
      const r = await call(`${d.servers[0]?.url}/refresh`, json({ refresh_token: token }));
      expect([r.status, r.body['code']]).toEqual([200, undefined]);
    }
  }

  describe.each(['fast', 'immediate'] as const)('PostgreSQL stopped (pg_ctl stop -m %s) under load, then started', (mode) => {
    test('when the database goes away, then no process exits, store operations answer 503 with Retry-After, GET /user stays 200, /readyz names the store, and every instance recovers by itself', async () => {
      const w = await startWorkload();
      await sleep(1_000);
      const stopAt = Date.now();
      await d.pg.stop(mode);
      const stoppedAt = Date.now();
      await sleep(3_000);
      const startAt = Date.now();
      await d.pg.start();
      const startedAt = Date.now();
      const recovered = await recovery(startedAt);
      await sleep(1_000);
      await w.stop();

      expect(badReplies([...w.user, ...w.refresh, ...w.login, ...w.ready])).toEqual([]);
      // A valid access token needs no store.
      expect(w.user.filter((r) => r.status !== 200)).toEqual([]);
      // Each instance said it was not ready while the database was down, naming the store...
      const during = w.ready.filter((r) => r.at > stoppedAt + 200 && r.at + r.ms < startAt);
      for (let i = 0; i < d.servers.length; i += 1) {
        expect(during.filter((r) => r.instance === i).map((r) => [r.status, (r.body['checks'] as Record<string, string>)?.['store']])).toContainEqual([
          503,
          'down',
        ]);
      }
      // ...and store operations were refused with a 503 and Retry-After, not lost in a 500.
      const refused = [...w.refresh, ...w.login].filter((r) => r.status === 503);
      expect(refused.length).toBeGreaterThan(0);
      for (const r of refused) expect([r.body['code'], r.headers.get('retry-after')]).toEqual(['store_unavailable', '5']);
      expect(recovered.every((ms) => ms >= 0 && ms < 5_000)).toBe(true);
      await expectChainsIntact(w);
      report(`postgres stop -m ${mode}`, {
        stopMs: stoppedAt - stopAt,
        outageMs: startAt - stoppedAt,
        startMs: startedAt - startAt,
        recoveryMsPerInstance: recovered,
        requests: w.user.length + w.refresh.length + w.login.length + w.ready.length,
        refused503: refused.length,
        maxLatencyMs: Math.max(...[...w.user, ...w.refresh, ...w.login].map((r) => r.ms)),
      });
    });
  });

  describe('PostgreSQL frozen (SIGSTOP) under load, then thawed', () => {
    test('when the database stops answering without closing its sockets, then nothing hangs past the timeouts, nothing is left half-done, and the instances recover', async () => {
      const w = await startWorkload();
      // Sessions to end during the freeze: each logout is acknowledged (204) or refused (503).
      const sessions = await Promise.all(d.servers.map((s) => login(s.url)));
      await sleep(1_000);
      const frozenAt = Date.now();
      await d.pg.freeze();
      const logouts = await Promise.all(
        sessions.map(async (s, i) => {
          await sleep(i * 300);
          return { session: s, reply: await call(`${d.servers[i]?.url}/logout`, { method: 'POST', ...bearer(s.access) }) };
        }),
      );
      await sleep(Math.max(0, 4_000 - (Date.now() - frozenAt)));
      const thawAt = Date.now();
      await d.pg.thaw();
      const recovered = await recovery(thawAt);
      await sleep(1_000);
      await w.stop();

      const all = [...w.user, ...w.refresh, ...w.login, ...w.ready, ...logouts.map((l) => l.reply)];
      expect(badReplies(all)).toEqual([]);
      // Nothing waited for the whole outage: every answer came within the configured bounds.
      expect(Math.max(...all.map((r) => r.ms))).toBeLessThanOrEqual(HANG_BOUND_MS);
      expect(w.user.filter((r) => r.status !== 200)).toEqual([]);
      expect(recovered.every((ms) => ms >= 0 && ms < 6_000)).toBe(true);

      // A logout refused during the freeze is retried; then every session is over on every instance.
      for (const l of logouts) {
        if (l.reply.status !== 204) expect((await call(`${d.servers[0]?.url}/logout`, { method: 'POST', ...bearer(l.session.access) })).status).toBe(204);
      }
      for (const l of logouts) {
        for (const s of d.servers) {
          expect(await within(BOUNDS.poll * 4, async () => (await call(`${s.url}/user`, bearer(l.session.access))).status === 401)).toBeGreaterThanOrEqual(0);
        }
      }
      // No connection was handed back to a pool in the middle of a transaction the client gave up on.
      const admin = new pg.Client({ connectionString: d.databaseUrl });
      await admin.connect();
      try {
        const open = await admin.query(
          "select count(*)::int as n from pg_stat_activity where datname = current_database() and state like 'idle in transaction%'",
        );
        expect(open.rows[0].n).toBe(0);
      } finally {
        await admin.end();
      }
      await expectChainsIntact(w);
      report('postgres frozen 4 s', {
        recoveryMsPerInstance: recovered,
        maxLatencyMs: Math.max(...all.map((r) => r.ms)),
        logoutsDuringFreeze: logouts.map((l) => l.reply.status),
        refused503: all.filter((r) => r.status === 503).length,
      });
    });
  });

  describe('an instance starting while PostgreSQL is down', () => {
    test('when the database comes back within STORE_STARTUP_TIMEOUT, then the waiting instance comes up by itself and serves', async () => {
      await d.pg.stop('fast');
      const startedAt = Date.now();
      const late = d.addServer();
      await sleep(2_000);
      await d.pg.start();
      const dbBackAt = Date.now();
      const srv = await late;
      const upAt = Date.now();
      expect((await call(`${srv.url}/login`, json({ name: 'admin', password: 'fault-suite-admin-password' }))).status).toBe(200);
      const waits = srv
        .stdout()
        .split('\n')
        .filter((l) => l.includes('"event":"store_wait"'));
      expect(waits.length).toBeGreaterThanOrEqual(1);
      expect(waits[0]).toMatch(/ECONNREFUSED/);
      report('start while PostgreSQL is down', { waitedMs: dbBackAt - startedAt, upAfterDatabaseMs: upAt - dbBackAt, waitLines: waits.length });
    });
  });
});
