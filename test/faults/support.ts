import { type PgCluster, startPgCluster } from '../support/pg-cluster';
import { type RedisProcess, startRedis } from '../support/redis-process';
import { type RunningServer, startServer, tempDir } from '../support/server-process';

export const SECRET = 'a-fault-suite-secret-of-at-least-32-bytes!!';
export const ADMIN_PASSWORD = 'fault-suite-admin-password';

/** The bounds the servers run with here, small so that outages show within a test's time. */
export const BOUNDS = {
  connect: 1_000,
  query: 2_000,
  statement: 1_500,
  poll: 500,
  redis: 500,
} as const;

/** The longest any request may take while a dependency is away: the query bound plus a connect, plus slack for a loaded machine. */
export const HANG_BOUND_MS = BOUNDS.query + BOUNDS.connect + 2_000;

/** Environment of a server process of the suite (production, PostgreSQL, Redis when given). */
export function serverEnv(databaseUrl: string, redisUrl?: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    NODE_ENV: 'production',
    JWT_SECRET: SECRET,
    ADMIN_PASSWORD,
    DATA_DIR: tempDir('fault-srv-'),
    DATABASE_URL: databaseUrl,
    STORE_CONNECT_TIMEOUT: String(BOUNDS.connect),
    STORE_QUERY_TIMEOUT: String(BOUNDS.query),
    STORE_STATEMENT_TIMEOUT: String(BOUNDS.statement),
    STORE_STARTUP_TIMEOUT: '30000',
    REVOCATION_POLL_INTERVAL: String(BOUNDS.poll),
    // The suite measures faults, not brute-force limits.
    LOGIN_RATE_IP: '1000000',
    LOGIN_RATE_NAME: '1000000',
    LOG_LEVEL: 'info',
    SHUTDOWN_TIMEOUT: '10000',
    ...(redisUrl ? { REDIS_URL: redisUrl, RATE_LIMIT_STORE: 'redis', REDIS_TIMEOUT: String(BOUNDS.redis) } : {}),
    ...extra,
  };
}

/** A PostgreSQL cluster, maybe a Redis, and server processes over them: what a test file owns. */
export interface Deployment {
  pg: PgCluster;
  redis: RedisProcess | undefined;
  databaseUrl: string;
  servers: RunningServer[];
  /** Starts one more server over the same database (and Redis). */
  addServer(extra?: Record<string, string>): Promise<RunningServer>;
  /** Servers that have exited, with their code and the end of their output: must stay empty. */
  exited(): { url: string; code: number | null; stderr: string }[];
  destroy(): Promise<void>;
}

export async function deploy(opts: { instances: number; redis: boolean; env?: Record<string, string> }): Promise<Deployment> {
  // A commit acknowledged to a client must survive a crash (pg_ctl stop -m immediate): the
  // harness's default of synchronous_commit = off would lose the last ones by design. fsync may
  // stay off, as the machine itself does not crash here.
  const pg = await startPgCluster({ settings: { synchronous_commit: true } });
  const redis = opts.redis ? await startRedis() : undefined;
  const databaseUrl = await pg.createDatabase();
  const servers: RunningServer[] = [];
  const codes = new Map<RunningServer, number | null>();
  const addServer = async (extra: Record<string, string> = {}) => {
    const srv = await startServer(serverEnv(databaseUrl, redis?.url, { ...opts.env, ...extra }));
    void srv.exited.then((code) => codes.set(srv, code));
    servers.push(srv);
    return srv;
  };
  try {
    // One first, so the schema and the admin exist; concurrent cold starts have their own test.
    await addServer();
    await Promise.all(Array.from({ length: opts.instances - 1 }, () => addServer()));
  } catch (error) {
    for (const s of servers) await s.stop('SIGKILL');
    await redis?.destroy();
    await pg.destroy();
    throw error;
  }
  return {
    pg,
    redis,
    databaseUrl,
    servers,
    addServer,
    exited: () => [...codes].map(([s, code]) => ({ url: s.url, code, stderr: s.stderr().slice(-2_000) + s.stdout().slice(-2_000) })),
    async destroy() {
      for (const s of servers) await s.stop('SIGKILL');
      await redis?.thaw().catch(() => undefined);
      await redis?.destroy();
      await pg.destroy();
    },
  };
}

export interface Reply {
  status: number;
  body: Record<string, unknown>;
  headers: Headers;
  ms: number;
}

/** One request with a client-side bound, so a hung server shows as `status: 0` rather than a hung test. */
export async function call(url: string, init: RequestInit = {}, timeoutMs = 15_000): Promise<Reply> {
  const started = Date.now();
  try {
    const res = await fetch(url, { ...init, signal: AbortSignal.timeout(timeoutMs) });
    const text = await res.text();
    let body: Record<string, unknown> = {};
    try {
      body = text ? (JSON.parse(text) as Record<string, unknown>) : {};
    } catch {
      body = { text };
    }
    return { status: res.status, body, headers: res.headers, ms: Date.now() - started };
  } catch (error) {
    return { status: 0, body: { error: String((error as Error)?.cause ?? error) }, headers: new Headers(), ms: Date.now() - started };
  }
}

export const json = (body: unknown): RequestInit => ({ method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
export const bearer = (token: string): RequestInit => ({ headers: { authorization: `Bearer ${token}` } });

export async function login(base: string, password = ADMIN_PASSWORD): Promise<{ access: string; refresh: string }> {
  const r = await call(`${base}/login`, json({ name: 'admin', password }));
  if (r.status !== 200) throw new Error(`login on ${base} answered ${r.status}: ${JSON.stringify(r.body)}`);
  return { access: r.body['access_token'] as string, refresh: r.body['refresh_token'] as string };
}

/** Polls `check` every 20 ms until it is true or `boundMs` passes; resolves with the ms it took, or -1. */
export async function within(boundMs: number, check: () => Promise<boolean> | boolean): Promise<number> {
  const started = Date.now();
  while (Date.now() - started <= boundMs) {
    if (await check()) return Date.now() - started;
    await new Promise((r) => setTimeout(r, 20));
  }
  return -1;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * What a client may see while a dependency is away: a success, a 401 for a token that was
 * revoked, or a 503 that says when to come back. Anything else (a 500, a reset, a hang) is a
 * defect; returns the offending replies.
 */
export function badReplies(replies: Reply[]): Reply[] {
  return replies.filter((r) => {
    if (r.status >= 200 && r.status < 300) return false;
    if (r.status === 401) return false;
    if (r.status === 503 && r.ms <= HANG_BOUND_MS) return !(r.headers.get('retry-after') || r.body['code'] === 'not_ready');
    return true;
  });
}
