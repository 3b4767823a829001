import { collectDefaultMetrics, Counter, Gauge, Histogram, type MetricObjectWithValues, type MetricValueWithName, Registry } from 'prom-client';
import type { DependencyState, Health } from './health';
import type { LoginOutcome, MetricHooks } from './metric-hooks';

/** What the gauges read when scraped: the instance's own state, never the store itself. */
export interface MetricSources {
  /** Dependency states as the background checks last recorded them (`/readyz`, the revocation poll, Redis). */
  health?: Health;
  revocations?: { readonly size: number };
  hashQueue?: { readonly waiting: number; readonly running: number };
}

/**
 * The server's Prometheus metrics, in a registry of their own (never prom-client's global one),
 * so several apps in one process (the tests) keep separate counts.
 */
export interface Metrics extends MetricHooks {
  readonly registry: Registry;
  /** The exposition format's Content-Type. */
  readonly contentType: string;
  /**
   * One answered request. `route` is the contract's operationId, `static` or `unmatched`, never
   * a raw path, so the label values stay few.
   */
  request(route: string, status: number, seconds: number): void;
  /** Where the scrape-time gauges read from. A later call replaces the sources it names. */
  track(sources: MetricSources): void;
  /** The exposition text of every metric. */
  render(): Promise<string>;
}

export interface MetricsOptions {
  /** prom-client's process and Node.js metrics (CPU, memory, event-loop lag, GC): the server's; tests leave them out. */
  defaultMetrics?: boolean;
}

/** Seconds: from a cached GET /user (about a millisecond) to the store's query timeout (5 s) and beyond. */
const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const LOGIN_OUTCOMES: readonly LoginOutcome[] = ['succeeded', 'failed', 'limited', 'error'];
const STATES: readonly DependencyState[] = ['up', 'degraded', 'down'];

/**
 * The requests of one operation, counted in plain numbers: prom-client's own `inc` and `observe`
 * hash and check their labels on every call (about 1.5 µs for the two, measured, a tenth of what
 * GET /user costs over bare Koa), so requests are counted here and handed to prom-client only
 * when scraped.
 */
interface RouteSeries {
  readonly operation: string;
  /** Requests by status. */
  readonly byStatus: Map<number, { n: number }>;
  /** Observations per bucket (the last one is +Inf), not cumulative. */
  readonly buckets: Float64Array;
  sum: number;
  count: number;
}

type Values = MetricObjectWithValues<MetricValueWithName<string>>;

/**
 * A histogram whose values come from {@link RouteSeries}: the registry reads a metric only
 * through `get` (and `getForPromString`), which this answers from the plain counts, with the
 * series the exposition format asks of a histogram (`_bucket` by `le`, cumulative; `_sum`; `_count`).
 */
const DURATION_NAME = 'auth_http_request_duration_seconds';
const DURATION_HELP = 'Time from a request reaching the app to its answer, by operation.';

class RequestDurations extends Histogram<'operation'> {
  constructor(
    private readonly series: Map<string, RouteSeries>,
    registry: Registry,
  ) {
    super({
      name: DURATION_NAME,
      help: DURATION_HELP,
      labelNames: ['operation'],
      buckets: DURATION_BUCKETS,
      registers: [registry],
    });
  }

  override async get(): Promise<Values> {
    return this.values();
  }

  async getForPromString(): Promise<Values> {
    return this.values();
  }

  private values(): Values {
    const values: MetricValueWithName<string>[] = [];
    for (const r of this.series.values()) {
      let cumulative = 0;
      DURATION_BUCKETS.forEach((le, i) => {
        cumulative += r.buckets[i] ?? 0;
        values.push({ metricName: `${DURATION_NAME}_bucket`, labels: { operation: r.operation, le }, value: cumulative });
      });
      values.push({ metricName: `${DURATION_NAME}_bucket`, labels: { operation: r.operation, le: '+Inf' }, value: r.count });
      values.push({ metricName: `${DURATION_NAME}_sum`, labels: { operation: r.operation }, value: r.sum });
      values.push({ metricName: `${DURATION_NAME}_count`, labels: { operation: r.operation }, value: r.count });
    }
    return { name: DURATION_NAME, help: DURATION_HELP, type: 'histogram', aggregator: 'sum', values } as unknown as Values;
  }
}

export function createMetrics(opts: MetricsOptions = {}): Metrics {
  const registry = new Registry();
  const registers = [registry];
  const sources: MetricSources = {};

  const routes = new Map<string, RouteSeries>();
  new Counter({
    name: 'auth_http_requests_total',
    help: 'HTTP requests answered, by operation (the contract operationId, "static" or "unmatched") and status.',
    labelNames: ['operation', 'status'] as const,
    registers,
    collect() {
      this.reset();
      for (const r of routes.values()) for (const [status, { n }] of r.byStatus) this.inc({ operation: r.operation, status: String(status) }, n);
    },
  });
  new RequestDurations(routes, registry);
  const logins = new Counter({
    name: 'auth_logins_total',
    help: 'Login attempts by outcome: succeeded, failed (wrong credentials), limited (brute-force limits), error (no verdict).',
    labelNames: ['outcome'] as const,
    registers,
  });
  const reuse = new Counter({
    name: 'auth_refresh_reuse_detected_total',
    help: 'Refresh tokens replayed after the reuse interval; each ended its session.',
    registers,
  });
  const revocations = new Counter({
    name: 'auth_sessions_revoked_total',
    help: 'Sessions revoked by this instance (logout, ended sessions, password changes, refresh reuse, disabled accounts).',
    registers,
  });
  // Zero from the start, so a rate() over a fresh instance sees every outcome.
  for (const outcome of LOGIN_OUTCOMES) logins.labels(outcome).inc(0);
  const loginOf = new Map(LOGIN_OUTCOMES.map((o) => [o, logins.labels(o)]));

  new Gauge({
    name: 'auth_revocation_list_size',
    help: 'Sessions in the in-memory revocation list (revoked, with access tokens that may still be live).',
    registers,
    collect() {
      this.set(sources.revocations?.size ?? 0);
    },
  });
  new Gauge({
    name: 'auth_hash_queue_waiting',
    help: 'Password hashes waiting for their turn.',
    registers,
    collect() {
      this.set(sources.hashQueue?.waiting ?? 0);
    },
  });
  new Gauge({
    name: 'auth_hash_queue_running',
    help: 'Password hashes running.',
    registers,
    collect() {
      this.set(sources.hashQueue?.running ?? 0);
    },
  });
  new Gauge({
    name: 'auth_dependency_state',
    help: 'Each dependency (store, redis) in its state as last checked: 1 for the state it is in, 0 for the others.',
    labelNames: ['dependency', 'state'] as const,
    registers,
    collect() {
      // Read from what the background checks recorded: a scrape costs the store nothing.
      this.reset();
      for (const [dependency, status] of Object.entries(sources.health?.snapshot() ?? {})) {
        for (const state of STATES) this.labels(dependency, state).set(status.state === state ? 1 : 0);
      }
    },
  });
  new Gauge({
    name: 'auth_draining',
    help: '1 once the instance is shutting down (readiness answers 503), else 0.',
    registers,
    collect() {
      this.set(sources.health?.draining ? 1 : 0);
    },
  });
  if (opts.defaultMetrics) collectDefaultMetrics({ register: registry });

  return {
    registry,
    contentType: registry.contentType,
    request(route, status, seconds) {
      let r = routes.get(route);
      if (r === undefined) {
        r = { operation: route, byStatus: new Map(), buckets: new Float64Array(DURATION_BUCKETS.length + 1), sum: 0, count: 0 };
        routes.set(route, r);
      }
      const counter = r.byStatus.get(status);
      if (counter === undefined) r.byStatus.set(status, { n: 1 });
      else counter.n += 1;
      let i = 0;
      while (i < DURATION_BUCKETS.length && seconds > (DURATION_BUCKETS[i] as number)) i += 1;
      r.buckets[i] = (r.buckets[i] ?? 0) + 1;
      r.sum += seconds;
      r.count += 1;
    },
    login: (outcome) => loginOf.get(outcome)?.inc(),
    refreshReused: () => reuse.inc(),
    revoked: () => revocations.inc(),
    track(more) {
      Object.assign(sources, more);
    },
    render: () => registry.metrics(),
  };
}
