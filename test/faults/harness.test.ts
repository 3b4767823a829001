import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Redis, type RedisOptions } from 'ioredis';
import pg from 'pg';
import { faultToolsPresent } from '../support/fault-tools';
import { runLoad, type RequestMaker } from '../support/load';
import { type PgCluster, startPgCluster } from '../support/pg-cluster';
import { type RedisProcess, startRedis } from '../support/redis-process';
import { freePort } from '../support/server-process';

/** A pg client that does not crash the test file when its server goes away under it. */
async function connect(url: string, opts: Partial<pg.ClientConfig> = {}): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000, ...opts });
  client.on('error', () => {});
  await client.connect();
  return client;
}

/** The faults harness itself: private PostgreSQL and Redis we can stop and freeze, and a load generator. */
(faultToolsPresent() ? describe : describe.skip)('fault harness', () => {
  let cluster: PgCluster;
  let redis: RedisProcess;

  beforeAll(async () => {
    const [c, r] = await Promise.allSettled([startPgCluster(), startRedis()]);
    if (c.status === 'fulfilled') cluster = c.value;
    if (r.status === 'fulfilled') redis = r.value;
    if (c.status === 'rejected') throw c.reason;
    if (r.status === 'rejected') throw r.reason;
  }, 60_000);
  afterAll(async () => {
    await Promise.all([cluster?.destroy(), redis?.destroy()]);
  });

  describe('PostgreSQL cluster', () => {
    let url: string;
    beforeAll(async () => {
      url = await cluster.createDatabase();
      const c = await connect(url);
      await c.query('create table kept (n int primary key)');
      await c.query('insert into kept values (1), (2)');
      await c.end();
    });

    test('when it is stopped (fast, then immediate) and started, then it answers on the same URL with its data', async () => {
      expect(url).toMatch(new RegExp(`^postgres://postgres@127\\.0\\.0\\.1:${cluster.port}/db_[0-9a-f]{12}$`));
      for (const mode of ['fast', 'immediate'] as const) {
        await cluster.stop(mode);
        expect(cluster.postmasterPid()).toBeUndefined();
        await expect(connect(url)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
        await cluster.start();
        const c = await connect(url);
        const r = await c.query('select n from kept order by n');
        await c.end();
        expect(r.rows).toEqual([{ n: 1 }, { n: 2 }]);
      }
    }, 30_000);

    test('when it is frozen, then a query on an open connection and a new connection both time out, and both work after thaw', async () => {
      const open = await connect(url, { query_timeout: 300 });
      try {
        const frozen = await cluster.freeze();
        // The postmaster, its auxiliary processes and the open connection's backend.
        expect(frozen[0]).toBe(cluster.postmasterPid());
        expect(frozen.length).toBeGreaterThan(3);
        await expect(open.query('select n from kept')).rejects.toThrow('Query read timeout');
        // TCP connect succeeds (the kernel's listen backlog); the startup packet gets no answer.
        await expect(connect(url, { connectionTimeoutMillis: 300 })).rejects.toThrow(/timeout/i);
        await cluster.thaw();
        // The open connection survives: pg swallows the late answer to the timed-out query.
        expect((await open.query('select count(*)::int as n from kept')).rows).toEqual([{ n: 2 }]);
        const fresh = await connect(url);
        expect((await fresh.query('select 1 as one')).rows).toEqual([{ one: 1 }]);
        await fresh.end();
      } finally {
        await cluster.thaw();
        await open.end();
      }
    });
  });

  describe('Redis process', () => {
    const clients: Redis[] = [];
    const client = (opts: RedisOptions = {}) => {
      const r = new Redis(redis.url, { commandTimeout: 300, maxRetriesPerRequest: 1, ...opts });
      r.on('error', () => {}); // reconnects are expected here
      clients.push(r);
      return r;
    };
    afterAll(() => {
      for (const r of clients) r.disconnect();
    });

    test('when it is frozen, then commands on an open and on a new connection time out, and work after thaw', async () => {
      const open = client();
      await open.set('k', 'v');
      await redis.freeze();
      try {
        await expect(open.get('k')).rejects.toThrow('Command timed out');
        // connectTimeout does not help: TCP connects, and the ready check is what hangs.
        const fresh = client({ connectTimeout: 300, retryStrategy: () => null });
        await expect(fresh.get('k')).rejects.toThrow('Command timed out');
      } finally {
        await redis.thaw();
      }
      expect(await open.get('k')).toBe('v');
    });

    test('when it is stopped and started, then ioredis reconnects to the same URL, and the data is gone (nothing persisted)', async () => {
      const open = client();
      await open.set('gone', '1');
      await redis.stop();
      expect(redis.pid()).toBeUndefined();
      await expect(open.get('gone')).rejects.toThrow();
      await redis.start();
      let value: string | null | undefined;
      for (let i = 0; i < 50 && value === undefined; i += 1) {
        value = await open.get('gone').catch(() => undefined);
        if (value === undefined) await new Promise((r) => setTimeout(r, 50));
      }
      expect(value).toBeNull();
    }, 15_000);
  });

  describe('load generator', () => {
    let server: http.Server;
    let base: string;
    beforeAll(async () => {
      server = http.createServer((req, res) => {
        if (req.url === '/ok') res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"ok":true}');
        else if (req.url === '/busy')
          res.writeHead(503, { 'Content-Type': 'application/problem+json', 'Retry-After': '1' }).end(JSON.stringify({ title: 'x'.repeat(500) }));
        else if (req.url === '/reset') req.socket.destroy();
        // '/hang' never answers.
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    afterAll(async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    });

    test('when it runs at a rate for a second, then it stops by itself and every request has its outcome', async () => {
      const makers: RequestMaker[] = [
        () => ({ url: '/ok', method: 'POST', body: { a: 1 } }),
        () => ({ url: '/busy', label: 'busy' }),
        () => ({ url: '/reset' }),
      ];
      const report = await runLoad(makers, { baseUrl: base, connections: 4, rate: 200, maxRequests: 10_000, maxDurationMs: 1000, bodyLimit: 100 });
      const s = report.summary();

      // Bounded: nothing starts after maxDurationMs, and nothing timed out (outcomes below).
      expect(report.stoppedBy).toBe('maxDurationMs');
      expect(report.records.every((r) => r.start < report.startedAt + 1000)).toBe(true);
      expect(s.total).toBeGreaterThanOrEqual(150);
      expect(s.total).toBeLessThanOrEqual(201);
      expect(Object.keys(s.byOutcome).sort()).toEqual(['200', '503', 'ECONNRESET']);
      for (const n of Object.values(s.byOutcome)) expect(Math.abs(n - s.total / 3)).toBeLessThanOrEqual(1);
      expect(s.ok).toBe(s.byOutcome['200']);
      expect(s.maxLatencyMs).toBe(Math.max(...report.records.map((r) => r.latencyMs)));
      expect(s.maxLatencyMs).toBeGreaterThanOrEqual(s.p99LatencyMs);

      const busy = report.records.filter((r) => r.label === 'busy');
      expect(busy.every((r) => r.status === 503 && r.headers['retry-after'] === '1' && r.headers['content-type'] === 'application/problem+json')).toBe(true);
      expect(busy.every((r) => r.body?.length === 100 && r.body.startsWith('{"title":"xxx'))).toBe(true);
      expect(report.records.filter((r) => r.status === 200).every((r) => r.body === undefined)).toBe(true);
      // Keep-alive: 503s go out on the socket the 200 before them used (a reset kills its own).
      expect(report.records.some((r) => r.reusedSocket)).toBe(true);

      const firstHalf = report.between(report.startedAt, report.startedAt + 500);
      expect(firstHalf.length).toBeGreaterThan(0);
      expect(firstHalf.length).toBeLessThan(s.total);
      expect(report.firstOkAfter(report.startedAt)?.status).toBe(200);
    });

    test('when requests hang or are refused, then they end as timeout and ECONNREFUSED at the request bound', async () => {
      const closed = `http://127.0.0.1:${await freePort()}/`;
      const report = await runLoad([() => ({ url: '/hang' }), () => ({ url: closed })], {
        baseUrl: base,
        connections: 2,
        concurrency: 2,
        maxRequests: 4,
        maxDurationMs: 5000,
        timeoutMs: 200,
      });
      expect(report.stoppedBy).toBe('maxRequests');
      expect(report.summary().byOutcome).toEqual({ timeout: 2, ECONNREFUSED: 2 });
      expect(report.records.filter((r) => r.error === 'timeout').every((r) => r.latencyMs >= 195 && r.latencyMs < 1000)).toBe(true);
    });

    test('when a target is not on loopback, then it refuses to send anything', async () => {
      await expect(runLoad([() => ({ url: 'http://192.0.2.1/' })], { connections: 1, maxRequests: 1, maxDurationMs: 100 })).rejects.toThrow(
        /only http on loopback/,
      );
    });
  });
});
