import { loadConfig } from '../../src/config';
import { type Listening, listen } from '../../src/http/listen';
import { metricsEndpoint } from '../../src/http/metrics-endpoint';
import { createLogger } from '../../src/http/request-log';
import { createMetrics, type Metrics } from '../../src/services/metrics';
import { openStore } from '../../src/store/open-store';
import { expectProblem } from '../support/expect-problem';
import { makeApp, TEST_SECRET, testPasswords } from '../support/make-app';
import { freePort, startServer, tempDir } from '../support/server-process';

/** The value of one series (0 when it does not exist), read as a scrape reads it (gauges collect). */
async function value(metrics: Metrics, name: string, labels: Record<string, string> = {}): Promise<number> {
  // A histogram's _count and _sum are values of the histogram itself.
  const base = name.replace(/_(count|sum)$/, '');
  const metric = metrics.registry.getSingleMetric(name) ?? metrics.registry.getSingleMetric(base);
  if (metric === undefined) throw new Error(`no metric ${name}`);
  const { values } = await metric.get();
  const match = values.find(
    (v) =>
      ((v as { metricName?: string }).metricName ?? name) === name &&
      Object.entries(labels).every(([k, want]) => String((v.labels as Record<string, unknown>)[k]) === want),
  );
  return match?.value ?? 0;
}

/** Every value of one label across a metric's series. */
async function labelValues(metrics: Metrics, name: string, label: string): Promise<string[]> {
  const { values } = await (metrics.registry.getSingleMetric(name) as NonNullable<ReturnType<Metrics['registry']['getSingleMetric']>>).get();
  return [...new Set(values.map((v) => String((v.labels as Record<string, unknown>)[label])))].sort();
}

describe('metrics: what the services count', () => {
  test('when logins succeed, fail and are limited, then auth_logins_total counts each outcome and the requests are counted under "login"', async () => {
    const metrics = createMetrics();
    const t = await makeApp({ LOGIN_RATE_NAME: '3', LOGIN_RATE_IP: '100' }, { metrics });
    const u = await t.makeUser();
    await t.http().post('/login').send({ name: u.name, password: u.password }).expect(200);
    await t.http().post('/login').send({ name: u.name, password: 'not-the-password' }).expect(401);
    await t.http().post('/login').send({ name: u.name, password: 'not-the-password' }).expect(401);
    await t.http().post('/login').send({ name: 'no-such-user', password: 'not-the-password' }).expect(401);
    // LOGIN_RATE_NAME is 3 failures per name and address: the fourth of u's is refused unchecked.
    await t.http().post('/login').send({ name: u.name, password: 'not-the-password' }).expect(401);
    await t.http().post('/login').send({ name: u.name, password: u.password }).expect(429);

    expect(await value(metrics, 'auth_logins_total', { outcome: 'succeeded' })).toBe(1);
    expect(await value(metrics, 'auth_logins_total', { outcome: 'failed' })).toBe(4);
    expect(await value(metrics, 'auth_logins_total', { outcome: 'limited' })).toBe(1);
    expect(await value(metrics, 'auth_logins_total', { outcome: 'error' })).toBe(0);
    expect(await value(metrics, 'auth_http_requests_total', { operation: 'login', status: '200' })).toBe(1);
    expect(await value(metrics, 'auth_http_requests_total', { operation: 'login', status: '401' })).toBe(4);
    expect(await value(metrics, 'auth_http_requests_total', { operation: 'login', status: '429' })).toBe(1);
    await t.close();
  });

  test('when a refresh token is replayed after the reuse interval, then the reuse and the revocation are counted and the revocation list gauge shows the session', async () => {
    const metrics = createMetrics();
    const t = await makeApp({}, { metrics });
    const u = await t.makeUser();
    const first = await t.login(u.name, u.password);
    await t.http().post('/refresh').send({ refresh_token: first.refresh }).expect(200);
    expect(await value(metrics, 'auth_refresh_reuse_detected_total')).toBe(0);
    t.clock.advance(11_000); // past REFRESH_REUSE_INTERVAL (10 s): a replay, not a retry
    const replay = await t.http().post('/refresh').send({ refresh_token: first.refresh });
    expectProblem(replay, 401, 'refresh_token_reused');

    expect(await value(metrics, 'auth_refresh_reuse_detected_total')).toBe(1);
    expect(await value(metrics, 'auth_sessions_revoked_total')).toBe(1);
    expect(await value(metrics, 'auth_revocation_list_size')).toBe(1);

    // A logout is a revocation too.
    const second = await t.login(u.name, u.password);
    await t.http().post('/logout').set('Authorization', `Bearer ${second.access}`).expect(204);
    expect(await value(metrics, 'auth_sessions_revoked_total')).toBe(2);
    expect(await value(metrics, 'auth_revocation_list_size')).toBe(2);
    await t.close();
  });

  test('when requests are answered, then they are counted by operationId and status, pages as "static", the rest as "unmatched", with one latency observation each', async () => {
    const metrics = createMetrics();
    const t = await makeApp({}, { metrics });
    const u = await t.makeUser();
    const { access } = await t.login(u.name, u.password);
    await t.http().get('/user').set('Authorization', `Bearer ${access}`).expect(200);
    await t.http().get('/user').set('Authorization', `Bearer ${access}`).expect(200);
    await t.http().get('/user').expect(401);
    await t.http().get('/login.html').expect(200);
    await t.http().get('/docs/swagger-ui.css').expect(200);
    // A token in a path must not become a label value: the path is never one.
    await t.http().get(`/user/${access}`).expect(404);
    await t.http().get('/no/such/thing').expect(404);

    expect(await value(metrics, 'auth_http_requests_total', { operation: 'getUser', status: '200' })).toBe(2);
    expect(await value(metrics, 'auth_http_requests_total', { operation: 'getUser', status: '401' })).toBe(1);
    expect(await value(metrics, 'auth_http_requests_total', { operation: 'static', status: '200' })).toBe(2);
    expect(await value(metrics, 'auth_http_requests_total', { operation: 'unmatched', status: '404' })).toBe(2);
    expect(await value(metrics, 'auth_http_request_duration_seconds_count', { operation: 'getUser' })).toBe(3);
    expect(await labelValues(metrics, 'auth_http_requests_total', 'operation')).toEqual(['getUser', 'login', 'static', 'unmatched']);

    const text = await metrics.render();
    expect(text).not.toContain(access);
    expect(text).not.toContain(u.password);
    expect(text).not.toContain('/user');
    await t.close();
  });

  test('when scraped, then the gauges read the dependency states, the hash queue and draining from the instance, without a query to the store', async () => {
    const metrics = createMetrics();
    let storeCalls = 0;
    const real = await openStore('sqlite::memory:');
    const counting = new Proxy(real, {
      get(target, prop, receiver) {
        const v = Reflect.get(target, prop, receiver) as unknown;
        if (typeof v !== 'function') return v;
        return (...args: unknown[]) => {
          storeCalls += 1;
          return (v as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
    const t = await makeApp({}, { metrics, store: counting });
    const { health } = t.app.services;
    health.set('store', 'up');
    health.set('redis', 'degraded', 'testing');

    storeCalls = 0;
    for (let i = 0; i < 5; i += 1) await metrics.render();
    expect(storeCalls).toBe(0);

    expect(await value(metrics, 'auth_dependency_state', { dependency: 'store', state: 'up' })).toBe(1);
    expect(await value(metrics, 'auth_dependency_state', { dependency: 'store', state: 'down' })).toBe(0);
    expect(await value(metrics, 'auth_dependency_state', { dependency: 'redis', state: 'degraded' })).toBe(1);
    health.set('store', 'down', 'testing');
    expect(await value(metrics, 'auth_dependency_state', { dependency: 'store', state: 'down' })).toBe(1);
    expect(await value(metrics, 'auth_dependency_state', { dependency: 'store', state: 'up' })).toBe(0);

    // The app's own hash queue: a hash started now is running when the gauge is read.
    expect(await value(metrics, 'auth_hash_queue_running')).toBe(0);
    const hashing = (await testPasswords()).hash('a password hashed for the gauge');
    expect(await value(metrics, 'auth_hash_queue_running')).toBe(1);
    await hashing;
    await new Promise((resolve) => setImmediate(resolve)); // the queue counts the hash done just after it resolves
    expect(await value(metrics, 'auth_hash_queue_running')).toBe(0);

    expect(await value(metrics, 'auth_draining')).toBe(0);
    health.drain();
    expect(await value(metrics, 'auth_draining')).toBe(1);
    await t.close();
  });

  test('when durations are observed, then the histogram is in the exposition format: cumulative buckets by le, +Inf, _sum and _count per operation', async () => {
    const metrics = createMetrics();
    for (const seconds of [0.0005, 0.001, 0.003, 0.2, 42]) metrics.request('getUser', 200, seconds);
    metrics.request('login', 401, 0.05);
    const text = await metrics.render();
    const bucket = (op: string, le: string) =>
      Number(new RegExp(`^auth_http_request_duration_seconds_bucket\\{operation="${op}",le="${le.replace('+', '\\+')}"\\} (\\S+)$`, 'm').exec(text)?.[1]);
    // le is "less than or equal": 0.001 falls in its own bucket.
    expect([
      bucket('getUser', '0.001'),
      bucket('getUser', '0.0025'),
      bucket('getUser', '0.005'),
      bucket('getUser', '0.25'),
      bucket('getUser', '10'),
      bucket('getUser', '+Inf'),
    ]).toEqual([2, 2, 3, 4, 4, 5]);
    expect(text).toMatch(/^auth_http_request_duration_seconds_count\{operation="getUser"\} 5$/m);
    expect(text).toMatch(/^auth_http_request_duration_seconds_sum\{operation="getUser"\} 42\.2045$/m);
    expect(bucket('login', '0.025')).toBe(0);
    expect(bucket('login', '0.05')).toBe(1);
    expect(text).toMatch(/^# TYPE auth_http_request_duration_seconds histogram$/m);
    expect(text).toMatch(/^auth_http_requests_total\{operation="getUser",status="200"\} 5$/m);
  });

  test("when two apps in one process each have metrics (process metrics too), then neither sees the other's counts", async () => {
    const a = createMetrics({ defaultMetrics: true });
    const b = createMetrics({ defaultMetrics: true });
    const ta = await makeApp({}, { metrics: a });
    const tb = await makeApp({}, { metrics: b });
    await ta.http().get('/healthz').expect(200);
    await ta.http().get('/healthz').expect(200);
    await tb.http().get('/healthz').expect(200);
    expect(await value(a, 'auth_http_requests_total', { operation: 'health', status: '200' })).toBe(2);
    expect(await value(b, 'auth_http_requests_total', { operation: 'health', status: '200' })).toBe(1);
    // Event-loop lag and process metrics come from prom-client's defaults, in each registry.
    expect(await a.render()).toMatch(/^nodejs_eventloop_lag_seconds /m);
    expect(await b.render()).toMatch(/^process_cpu_seconds_total /m);
    await ta.close();
    await tb.close();
  });
});

describe('metrics: where they are served', () => {
  const limits = loadConfig({ NODE_ENV: 'test', JWT_SECRET: TEST_SECRET }).http;
  const logger = createLogger('silent');
  let listening: Listening | undefined;
  afterEach(async () => {
    await listening?.shutdown();
    listening = undefined;
  });
  const serve = async (token?: string) => {
    const metrics = createMetrics();
    metrics.request('health', 200, 0.001);
    listening = await listen(metricsEndpoint({ metrics, token, logger }), { host: '127.0.0.1', port: 0, limits, shutdownTimeout: 2_000, logger });
    return `http://127.0.0.1:${listening.port}`;
  };

  test('when GET /metrics is asked of the metrics listener, then it answers in the Prometheus text format', async () => {
    const url = await serve();
    const res = await fetch(`${url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(await res.text()).toContain('auth_http_requests_total{operation="health",status="200"} 1');
    expect((await fetch(`${url}/`)).status).toBe(404);
    expect((await fetch(`${url}/metrics/x`)).status).toBe(404);
    const post = await fetch(`${url}/metrics`, { method: 'POST' });
    expect([post.status, post.headers.get('allow')]).toEqual([405, 'GET, HEAD']);
  });

  test.each([
    ['no Authorization', undefined],
    ['a wrong token', 'Bearer wrong-token-of-some-length'],
    ['the token with a character less', 'Bearer metrics-token-0123456789abcde'],
    ['the token with a character more', 'Bearer metrics-token-0123456789abcdeff'],
    ['the token as Basic credentials', 'Basic metrics-token-0123456789abcdef'],
    ['the bare token', 'metrics-token-0123456789abcdef'],
  ])('when METRICS_TOKEN is set and a scrape sends %s, then 401 with a Bearer challenge and no metrics', async (_what, authorization) => {
    const url = await serve('metrics-token-0123456789abcdef');
    const res = await fetch(`${url}/metrics`, authorization === undefined ? {} : { headers: { authorization } });
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toBe('Bearer realm="metrics"');
    expect(await res.text()).not.toContain('auth_');
  });

  test('when METRICS_TOKEN is set and a scrape sends it as a bearer token, then the metrics', async () => {
    const url = await serve('metrics-token-0123456789abcdef');
    const res = await fetch(`${url}/metrics`, { headers: { authorization: 'Bearer metrics-token-0123456789abcdef' } });
    expect(res.status).toBe(200);
    expect(await res.text()).toContain('auth_http_requests_total');
  });

  test('when /metrics is asked of the main app, with metrics on, then it is the 404 problem', async () => {
    const t = await makeApp({}, { metrics: createMetrics() });
    expectProblem(await t.http().get('/metrics'), 404, 'not_found');
    await t.close();
  });

  test('when the server runs with METRICS_PORT, then the metrics listener answers there (process metrics included), the main port does not, and both close on SIGTERM', async () => {
    const metricsPort = await freePort();
    const srv = await startServer({ NODE_ENV: 'test', JWT_SECRET: TEST_SECRET, DATA_DIR: tempDir(), METRICS_PORT: String(metricsPort) });
    try {
      expect((await fetch(`${srv.url}/metrics`)).status).toBe(404);
      const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
      expect(res.status).toBe(200);
      const text = await res.text();
      // startServer waited for /healthz: that request is counted.
      expect(text).toMatch(/^auth_http_requests_total\{operation="health",status="200"\} [1-9]/m);
      expect(text).toMatch(/^nodejs_eventloop_lag_seconds /m);
      expect(text).toMatch(/^auth_dependency_state\{dependency="store",state="up"\} 1$/m);
    } finally {
      expect(await srv.stop()).toBe(0);
    }
    await expect(fetch(`http://127.0.0.1:${metricsPort}/metrics`)).rejects.toThrow();
  });

  test('when the server runs without METRICS_PORT, then no metrics anywhere: the main port answers 404', async () => {
    const srv = await startServer({ NODE_ENV: 'test', JWT_SECRET: TEST_SECRET, DATA_DIR: tempDir() });
    try {
      expect((await fetch(`${srv.url}/metrics`)).status).toBe(404);
    } finally {
      expect(await srv.stop()).toBe(0);
    }
  });
});
