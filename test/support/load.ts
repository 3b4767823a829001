import http from 'node:http';
import { performance } from 'node:perf_hooks';

/** One request to send: an absolute URL, or a path resolved against `LoadOptions.baseUrl`. */
export interface RequestSpec {
  method?: string;
  /** Absolute (`http://127.0.0.1:3000/login`) or a path (`/login`) under `baseUrl`. */
  url: string;
  headers?: Record<string, string>;
  /** A string or Buffer is sent as is; anything else as JSON (with its Content-Type). */
  body?: string | Buffer | object;
  /** Free text kept on the record (e.g. `'login'`), to tell request kinds apart afterwards. */
  label?: string;
}

/** Makes the `seq`-th request; makers are used round-robin, so seq 0 goes to the first maker. */
export type RequestMaker = (seq: number) => RequestSpec;

/** Bounds and shape of a run. Give `rate` (open loop) or `concurrency` (closed loop), not both. */
export interface LoadOptions {
  /** Keep-alive sockets per origin (the agent's `maxSockets`). */
  connections: number;
  /** Open loop: start this many requests per second whatever happens to earlier ones. */
  rate?: number;
  /** Closed loop: this many requests in flight, each starting when one ends. Default `connections`. */
  concurrency?: number;
  /** Stop starting requests after this many. */
  maxRequests: number;
  /** Stop starting requests after this long; in-flight ones still end (by `timeoutMs` at worst). */
  maxDurationMs: number;
  /** Per-request client timeout, from start to the end of the body. Default 10 s. */
  timeoutMs?: number;
  /** Resolves relative `RequestSpec.url`s. */
  baseUrl?: string;
  /** Response headers copied onto each record (lower case). Default Retry-After and Content-Type. */
  headers?: string[];
  /** Bytes of a non-2xx body kept on the record. Default 2048. */
  bodyLimit?: number;
}

/** What happened to one request. Times are epoch milliseconds with sub-ms precision ({@link now}). */
export interface RequestRecord {
  seq: number;
  label?: string;
  method: string;
  url: string;
  start: number;
  end: number;
  latencyMs: number;
  /** The HTTP status, when a whole response arrived. */
  status?: number;
  /** Otherwise the error: a Node code (`ECONNRESET`, `ECONNREFUSED`, `EPIPE`...), or `timeout`. */
  error?: string;
  /** True when the request went out on a kept-alive socket that carried an earlier request of this run. */
  reusedSocket: boolean;
  /** The headers asked for in `LoadOptions.headers` that the response had. */
  headers: Record<string, string>;
  /** The start of a non-2xx body (truncated to `bodyLimit` bytes). */
  body?: string;
}

/** Counts and latency of a set of records. */
export interface LoadSummary {
  total: number;
  /** By outcome: the status as a string (`'200'`, `'503'`) or the error code (`'ECONNRESET'`, `'timeout'`). */
  byOutcome: Record<string, number>;
  /** Records with a 2xx status. */
  ok: number;
  maxLatencyMs: number;
  p50LatencyMs: number;
  p99LatencyMs: number;
  /** From the first start to the last end. */
  spanMs: number;
}

/** The finished run: every record in start order, plus queries over them. */
export interface LoadReport {
  records: RequestRecord[];
  startedAt: number;
  endedAt: number;
  /** Why it stopped starting requests. */
  stoppedBy: 'maxRequests' | 'maxDurationMs' | 'stop()';
  summary(records?: RequestRecord[]): LoadSummary;
  /** Records that started in [from, to) (or ended there, with `by: 'end'`). */
  between(from: number, to: number, by?: 'start' | 'end'): RequestRecord[];
  /** The first record starting at or after `t` with a 2xx status: recovery after a fault. */
  firstOkAfter(t: number): RequestRecord | undefined;
}

/** A run in progress. */
export interface LoadRun {
  /** Records of the requests that have ended so far (live; in end order). */
  readonly records: readonly RequestRecord[];
  /** Stop starting new requests now; `finished` resolves once the in-flight ones end. */
  stop(): void;
  readonly finished: Promise<LoadReport>;
}

/** Epoch milliseconds with sub-millisecond precision, the clock of every {@link RequestRecord}. */
export function now(): number {
  return performance.timeOrigin + performance.now();
}

/** The outcome key of a record: its status as a string, or its error code. */
export function outcomeOf(r: RequestRecord): string {
  return r.status !== undefined ? String(r.status) : (r.error ?? 'unknown');
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]']);

/** Counts by outcome and latency percentiles of `records`. */
export function summarize(records: readonly RequestRecord[]): LoadSummary {
  const byOutcome: Record<string, number> = {};
  for (const r of records) byOutcome[outcomeOf(r)] = (byOutcome[outcomeOf(r)] ?? 0) + 1;
  const lat = records.map((r) => r.latencyMs).sort((a, b) => a - b);
  const pct = (p: number) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] ?? 0;
  return {
    total: records.length,
    byOutcome,
    ok: records.filter((r) => r.status !== undefined && r.status >= 200 && r.status < 300).length,
    maxLatencyMs: lat[lat.length - 1] ?? 0,
    p50LatencyMs: pct(0.5),
    p99LatencyMs: pct(0.99),
    spanMs: records.length ? Math.max(...records.map((r) => r.end)) - Math.min(...records.map((r) => r.start)) : 0,
  };
}

/**
 * Starts a bounded load run over keep-alive `http.Agent` sockets and records every request's
 * outcome. Stops starting requests at `maxRequests` or `maxDurationMs` (or `stop()`), then
 * waits for the in-flight ones, each bounded by `timeoutMs`: it never runs longer than
 * `maxDurationMs + timeoutMs`. Only loopback targets are allowed, so a typo cannot load
 * someone else's server.
 *
 * With `rate`, requests start on a fixed schedule (open loop): a slow server makes requests
 * queue for a socket, and that wait counts in their latency, as a client would see it.
 */
export function startLoad(makers: RequestMaker[], opts: LoadOptions): LoadRun {
  if (makers.length === 0) throw new TypeError('startLoad: no request makers');
  if (opts.rate !== undefined && opts.concurrency !== undefined) throw new TypeError('startLoad: give rate or concurrency, not both');
  if (!(opts.connections >= 1 && opts.maxRequests >= 0 && opts.maxDurationMs >= 0))
    throw new TypeError('startLoad: connections >= 1, maxRequests and maxDurationMs >= 0');
  if (opts.rate !== undefined && !(opts.rate > 0)) throw new TypeError('startLoad: rate must be > 0');
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const wanted = (opts.headers ?? ['retry-after', 'content-type']).map((h) => h.toLowerCase());
  const bodyLimit = opts.bodyLimit ?? 2048;
  const agent = new http.Agent({ keepAlive: true, maxSockets: opts.connections });
  const records: RequestRecord[] = [];
  const sockets = new WeakSet<object>();
  const startedAt = now();
  const deadline = startedAt + opts.maxDurationMs;
  let started = 0;
  let stoppedBy: LoadReport['stoppedBy'] | undefined;
  let wake: (() => void) | undefined;

  function mayStart(): boolean {
    if (stoppedBy) return false;
    if (started >= opts.maxRequests) stoppedBy = 'maxRequests';
    else if (now() >= deadline) stoppedBy = 'maxDurationMs';
    return !stoppedBy;
  }

  function send(seq: number): Promise<void> {
    const spec = (makers[seq % makers.length] as RequestMaker)(seq);
    const url = new URL(spec.url, opts.baseUrl);
    if (url.protocol !== 'http:' || !LOOPBACK.has(url.hostname)) throw new Error(`startLoad: only http on loopback, not ${url.href}`);
    const method = spec.method ?? 'GET';
    const headers: Record<string, string> = { ...spec.headers };
    let payload: string | Buffer | undefined;
    if (typeof spec.body === 'string' || Buffer.isBuffer(spec.body)) payload = spec.body;
    else if (spec.body !== undefined) {
      payload = JSON.stringify(spec.body);
      headers['content-type'] ??= 'application/json';
    }
    if (payload !== undefined) headers['content-length'] = String(Buffer.byteLength(payload));

    const record: RequestRecord = { seq, method, url: url.href, start: now(), end: 0, latencyMs: 0, reusedSocket: false, headers: {} };
    if (spec.label !== undefined) record.label = spec.label;
    return new Promise<void>((resolve) => {
      let settled = false;
      const finish = (fields: Partial<RequestRecord>) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        Object.assign(record, fields);
        record.end = now();
        record.latencyMs = record.end - record.start;
        records.push(record);
        resolve();
      };
      const req = http.request(url, { method, headers, agent });
      const timer = setTimeout(() => {
        finish({ error: 'timeout' });
        req.destroy();
      }, timeoutMs);
      req.on('socket', (socket) => {
        // Not req.reusedSocket: the agent leaves it false when a queued request gets a freed socket.
        record.reusedSocket = sockets.has(socket);
        sockets.add(socket);
      });
      req.on('error', (err: NodeJS.ErrnoException) => finish({ error: err.code ?? err.message }));
      req.on('response', (res) => {
        const ok = (res.statusCode ?? 0) >= 200 && (res.statusCode ?? 0) < 300;
        const kept: Buffer[] = [];
        let keptBytes = 0;
        // The whole body is read even when not kept, or the keep-alive socket is not reused.
        res.on('data', (chunk: Buffer) => {
          if (!ok && keptBytes < bodyLimit) {
            kept.push(chunk.subarray(0, bodyLimit - keptBytes));
            keptBytes += Math.min(chunk.length, bodyLimit - keptBytes);
          }
        });
        res.on('error', (err: NodeJS.ErrnoException) => finish({ error: err.code ?? err.message }));
        res.on('aborted', () => finish({ error: 'ECONNRESET' }));
        res.on('end', () => {
          const picked: Record<string, string> = {};
          for (const h of wanted) {
            const v = res.headers[h];
            if (v !== undefined) picked[h] = Array.isArray(v) ? v.join(', ') : v;
          }
          const fields: Partial<RequestRecord> = { status: res.statusCode, headers: picked };
          if (!ok) fields.body = Buffer.concat(kept).toString('utf8');
          finish(fields);
        });
      });
      req.end(payload);
    });
  }

  const sleepUntil = (t: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(done, Math.max(0, t - now()));
      function done() {
        clearTimeout(timer);
        wake = undefined;
        resolve();
      }
      wake = done;
    });

  async function closedLoop(workers: number): Promise<void> {
    const worker = async () => {
      try {
        while (mayStart()) await send(started++);
      } catch (err) {
        stoppedBy ??= 'stop()'; // a maker threw: stop the other workers too
        throw err;
      }
    };
    await Promise.all(Array.from({ length: workers }, worker));
  }

  async function openLoop(rate: number): Promise<void> {
    const interval = 1000 / rate;
    const inFlight = new Set<Promise<void>>();
    while (mayStart()) {
      // Start everything that is due (a late timer catches up instead of drifting).
      while (mayStart() && startedAt + started * interval <= now()) {
        let p: Promise<void>;
        try {
          p = send(started++);
        } catch (err) {
          stoppedBy ??= 'stop()'; // a maker threw: end the run once the in-flight ones are done
          await Promise.all(inFlight);
          throw err;
        }
        inFlight.add(p);
        void p.then(() => inFlight.delete(p));
      }
      if (!stoppedBy) await sleepUntil(Math.min(deadline, startedAt + started * interval));
    }
    await Promise.all(inFlight);
  }

  const finished = (async (): Promise<LoadReport> => {
    try {
      await (opts.rate !== undefined ? openLoop(opts.rate) : closedLoop(opts.concurrency ?? opts.connections));
    } finally {
      agent.destroy();
    }
    const sorted = [...records].sort((a, b) => a.start - b.start);
    return {
      records: sorted,
      startedAt,
      endedAt: now(),
      stoppedBy: stoppedBy ?? 'stop()',
      summary: (rs = sorted) => summarize(rs),
      between: (from, to, by = 'start') => sorted.filter((r) => r[by] >= from && r[by] < to),
      firstOkAfter: (t) => sorted.find((r) => r.start >= t && r.status !== undefined && r.status >= 200 && r.status < 300),
    };
  })();

  return {
    records,
    stop() {
      stoppedBy ??= 'stop()';
      wake?.();
    },
    finished,
  };
}

/** {@link startLoad} and wait for its report. */
export function runLoad(makers: RequestMaker[], opts: LoadOptions): Promise<LoadReport> {
  return startLoad(makers, opts).finished;
}
