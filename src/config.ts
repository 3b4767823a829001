import { availableParallelism } from 'node:os';
import path from 'node:path';
import { AuthError } from './errors';
import { checkPasswordPolicy } from './services/password-policy';

/** The signing algorithms this server issues access tokens with (`JWT_ALGORITHM`). */
export const SIGNING_ALGORITHMS = ['HS256', 'ES256', 'EdDSA'] as const;
export type SigningAlgorithm = (typeof SIGNING_ALGORITHMS)[number];

/** The server's settings, parsed and checked once from the environment. */
export interface Config {
  readonly env: 'production' | 'development' | 'test';
  readonly host: string;
  readonly port: number;
  /** Undefined outside production when `JWT_SECRET` is unset: the server makes and keeps one. */
  readonly jwtSecret: string | undefined;
  readonly jwtIssuer: string;
  readonly jwtAudience: string;
  /** The algorithm access tokens are signed with, and the only one accepted. */
  readonly jwtAlgorithm: SigningAlgorithm;
  /** Seconds between a new key's publication in the JWKS and its first signature. */
  readonly keyPublishLead: number;
  /** Seconds a key signs before the next one takes over by itself; 0: only `npm run keys -- rotate`. */
  readonly keyRotationPeriod: number;
  /** The server's URL as clients reach it (no trailing slash), for the metadata; else the request's origin. */
  readonly publicUrl: string | undefined;
  /** Seconds. */
  readonly accessTokenTtl: number;
  /** Seconds a refresh token lives unused. */
  readonly refreshTokenTtl: number;
  /** Seconds a session (a refresh family) lives at most, however often it is refreshed. */
  readonly sessionMaxAge: number;
  /** Seconds of clock skew tolerated when checking `exp` and `nbf`. */
  readonly clockSkew: number;
  readonly dataDir: string;
  readonly databaseUrl: string;
  readonly storeTimeouts: StoreTimeouts;
  readonly adminName: string;
  readonly adminPassword: string | undefined;
  readonly allowSignup: boolean;
  readonly argon2: {
    readonly memoryCost: number;
    readonly timeCost: number;
    readonly parallelism: number;
    readonly concurrency: number;
    /** Hashes running or waiting from all clients together; past it, 503. */
    readonly queueLimit: number;
    /** Hashes running or waiting for one client address; past it, 429. */
    readonly clientLimit: number;
  };
  /** Bytes. */
  readonly bodyLimit: number;
  readonly trustProxy: boolean;
  readonly corsOrigins: readonly string[];
  /** `auto` sets `Secure` when the request came over HTTPS. */
  readonly cookieSecure: 'auto' | boolean;
  readonly rateLimit: {
    readonly store: 'memory' | 'redis';
    readonly redisUrl: string | undefined;
    /** Failed logins allowed per client address in one window. */
    readonly ipPoints: number;
    /** Failed logins allowed per account name from one address (and per trusted device) in one window. */
    readonly namePoints: number;
    /** Failed logins of one account from all addresses in one window before each attempt waits a growing delay. */
    readonly accountPoints: number;
    /** Seconds. */
    readonly window: number;
  };
  readonly logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /**
   * Human-readable log lines (pino-pretty): `auto` when development and standard output is a
   * terminal. Always `false` under production, where logs are JSON for collectors.
   */
  readonly logPretty: 'auto' | boolean;
  /** The metrics listener (Prometheus); `port` undefined when it is off, as by default. */
  readonly metrics: MetricsConfig;
  /** Milliseconds to finish requests in flight on SIGTERM/SIGINT. */
  readonly shutdownTimeout: number;
  /** Milliseconds between looks at the store for revocations made by other processes. */
  readonly revocationPollInterval: number;
  /** Days audit events are kept; older ones are pruned hourly. */
  readonly auditRetention: number;
  /**
   * Seconds within which a second use of a refresh token (a lost answer retried, two tabs at
   * once) is answered for the same live session instead of counting as a replay.
   */
  readonly refreshReuseInterval: number;
  /** Milliseconds a Redis command may take before it counts as failed (connect and command). */
  readonly redisTimeout: number;
  readonly http: HttpLimits;
}

/** Where the Prometheus metrics are served: a listener of their own, never the main port. */
export interface MetricsConfig {
  /** Undefined: no metrics listener (the default). 0 picks a free port. */
  readonly port: number | undefined;
  readonly host: string;
  /** When set, a scrape must send `Authorization: Bearer <token>`. */
  readonly token: string | undefined;
}

/** How long the store may take before a request gives up on it (milliseconds). */
export interface StoreTimeouts {
  /** Opening a connection (PostgreSQL). */
  readonly connect: number;
  /** A query, measured by the client: covers a server that stopped answering. */
  readonly query: number;
  /** A statement, enforced by PostgreSQL itself (`statement_timeout`). */
  readonly statement: number;
  /** SQLite's `busy_timeout`: how long a write waits for another writer's lock. */
  readonly sqliteBusy: number;
  /** How long start-up keeps trying to reach the store (with backoff) before it gives up. */
  readonly startup: number;
}

/** Socket limits of the HTTP server (milliseconds, except `maxConnections`). */
export interface HttpLimits {
  /** A request's head must arrive within this. */
  readonly headersTimeout: number;
  /** A whole request (head and body) must arrive within this. */
  readonly requestTimeout: number;
  /** An idle keep-alive connection is closed after this. */
  readonly keepAliveTimeout: number;
  /** A new connection that has sent no request head within this is closed. */
  readonly connectionIdleTimeout: number;
  /** Connections open at once; more are refused. */
  readonly maxConnections: number;
  /** On SIGTERM, how long readiness answers 503 before the listener closes (for load balancers). */
  readonly shutdownDrainDelay: number;
}

/** Thrown by {@link loadConfig} with every problem found, one a line. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n  - ${problems.join('\n  - ')}`);
  }
}

type Env = Readonly<Record<string, string | undefined>>;

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
const MIN_SECRET_BYTES = 32;

/** Readers of `env` keys that push what is wrong to `problems` and return the fallback. */
function envReader(env: Env, problems: string[]) {
  const str = (key: string): string | undefined => {
    const v = env[key];
    return v === undefined || v === '' ? undefined : v;
  };
  const int = (key: string, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER): number => {
    const raw = str(key);
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (!/^\d+$/.test(raw.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
      problems.push(`${key} must be a whole number from ${min} to ${max} (got "${raw}")`);
      return fallback;
    }
    return n;
  };
  const bool = (key: string, fallback: boolean): boolean => {
    const raw = str(key);
    if (raw === undefined) return fallback;
    if (/^(true|1|yes)$/i.test(raw)) return true;
    if (/^(false|0|no)$/i.test(raw)) return false;
    problems.push(`${key} must be true or false (got "${raw}")`);
    return fallback;
  };
  return { str, int, bool };
}

type EnvReader = ReturnType<typeof envReader>;

function readDatabase({ str, int }: EnvReader, problems: string[]): Pick<Config, 'dataDir' | 'databaseUrl' | 'storeTimeouts'> {
  const dataDir = path.resolve(str('DATA_DIR') ?? './data');
  const databaseUrl = str('DATABASE_URL') ?? `sqlite:${path.join(dataDir, 'auth.db')}`;
  if (!/^(sqlite:|postgres(ql)?:\/\/)/.test(databaseUrl)) {
    problems.push(`DATABASE_URL must start with sqlite: or postgres:// (got "${databaseUrl.replace(/:[^:@/]*@/, ':***@')}")`);
  }
  const storeTimeouts: StoreTimeouts = Object.freeze({
    connect: int('STORE_CONNECT_TIMEOUT', 3_000, 100, 600_000),
    query: int('STORE_QUERY_TIMEOUT', 5_000, 100, 600_000),
    statement: int('STORE_STATEMENT_TIMEOUT', 4_000, 100, 600_000),
    sqliteBusy: int('SQLITE_BUSY_TIMEOUT', 5_000, 0, 600_000),
    startup: int('STORE_STARTUP_TIMEOUT', 60_000, 0, 86_400_000),
  });
  if (storeTimeouts.statement > storeTimeouts.query) {
    problems.push('STORE_STATEMENT_TIMEOUT must not exceed STORE_QUERY_TIMEOUT (PostgreSQL should cancel a statement before the client gives up on it)');
  }
  return { dataDir, databaseUrl, storeTimeouts };
}

/** Shortest `METRICS_TOKEN` accepted: a scrape credential, so long enough not to be guessed. */
const MIN_METRICS_TOKEN_CHARS = 16;

function readMetrics({ str, int }: EnvReader, problems: string[]): MetricsConfig {
  const token = str('METRICS_TOKEN');
  if (token !== undefined && token.length < MIN_METRICS_TOKEN_CHARS) {
    problems.push(`METRICS_TOKEN must be at least ${MIN_METRICS_TOKEN_CHARS} characters (make one with: openssl rand -hex 24)`);
  }
  return Object.freeze({
    port: str('METRICS_PORT') === undefined ? undefined : int('METRICS_PORT', 0, 0, 65535),
    host: str('METRICS_HOST') ?? '127.0.0.1',
    token,
  });
}

/** Password hashes run at once by default: one core fewer than the machine has, at least one. */
export function defaultHashConcurrency(): number {
  return Math.max(1, availableParallelism() - 1);
}

function readArgon2({ int }: EnvReader): Config['argon2'] {
  return {
    // OWASP's minimum for argon2id: 19 MiB, t=2, p=1.
    memoryCost: int('ARGON2_MEMORY_KIB', 19_456, 19_456, 4_194_304),
    timeCost: int('ARGON2_TIME_COST', 2, 2, 100),
    parallelism: int('ARGON2_PARALLELISM', 1, 1, 16),
    concurrency: int('ARGON2_CONCURRENCY', defaultHashConcurrency(), 1, 256),
    queueLimit: int('ARGON2_QUEUE_LIMIT', 64, 1, 100_000),
    clientLimit: int('ARGON2_CLIENT_LIMIT', 4, 1, 100_000),
  };
}

/**
 * Parses every key of `env`, collects every problem into one {@link ConfigError}, and returns a
 * frozen config. Pure: reads nothing but its argument. No secret has a fallback value.
 */
export function loadConfig(env: Env): Config {
  const problems: string[] = [];
  const reader = envReader(env, problems);
  const { str, int, bool } = reader;

  const nodeEnv = str('NODE_ENV') ?? 'development';
  if (!['production', 'development', 'test'].includes(nodeEnv)) {
    problems.push(`NODE_ENV must be production, development or test (got "${nodeEnv}")`);
  }
  const production = nodeEnv === 'production';

  const jwtSecret = str('JWT_SECRET');
  if (jwtSecret !== undefined && Buffer.byteLength(jwtSecret, 'utf8') < MIN_SECRET_BYTES) {
    problems.push(`JWT_SECRET must be at least ${MIN_SECRET_BYTES} bytes (make one with: openssl rand -base64 48)`);
  } else if (jwtSecret === undefined && production) {
    problems.push(`JWT_SECRET is required when NODE_ENV=production (at least ${MIN_SECRET_BYTES} bytes; make one with: openssl rand -base64 48)`);
  }

  const jwtAlgorithm = (str('JWT_ALGORITHM') ?? 'HS256') as SigningAlgorithm;
  if (!SIGNING_ALGORITHMS.includes(jwtAlgorithm)) problems.push(`JWT_ALGORITHM must be one of ${SIGNING_ALGORITHMS.join(', ')} (got "${jwtAlgorithm}")`);
  const keyPublishLead = int('JWT_KEY_PUBLISH_LEAD', 600, 0, 7 * 86_400);
  const keyRotationPeriod = int('JWT_KEY_ROTATION_PERIOD', 0, 0, 366 * 86_400);
  if (keyRotationPeriod > 0 && keyRotationPeriod <= keyPublishLead)
    problems.push('JWT_KEY_ROTATION_PERIOD must be longer than JWT_KEY_PUBLISH_LEAD (or 0 for no automatic rotation)');
  let publicUrl = str('PUBLIC_URL');
  if (publicUrl !== undefined) {
    publicUrl = publicUrl.replace(/\/+$/, '');
    if (!/^https?:\/\/[^/\s?#]+(\/[^\s?#]*)?$/.test(publicUrl))
      problems.push(`PUBLIC_URL must be an http(s) URL without query or fragment, like https://auth.example (got "${publicUrl}")`);
  }

  const adminName = str('ADMIN_NAME') ?? 'admin';
  if (adminName.length > 64) problems.push('ADMIN_NAME must be at most 64 characters');
  const adminPassword = env['ADMIN_PASSWORD'] === '' ? undefined : env['ADMIN_PASSWORD'];
  if (adminPassword !== undefined) {
    // The policy every password meets (length, not a common password, not the name).
    try {
      checkPasswordPolicy(adminPassword, '/ADMIN_PASSWORD', { name: adminName });
    } catch (error) {
      problems.push(`ADMIN_PASSWORD ${error instanceof AuthError ? (error.errors?.[0]?.message ?? error.message) : String(error)}`);
    }
  }

  const { dataDir, databaseUrl, storeTimeouts } = readDatabase(reader, problems);

  const logLevel = (str('LOG_LEVEL') ?? (nodeEnv === 'test' ? 'silent' : 'info')) as Config['logLevel'];
  if (!LOG_LEVELS.includes(logLevel)) problems.push(`LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}`);

  const logPrettyRaw = str('LOG_PRETTY') ?? 'auto';
  let logPretty: Config['logPretty'] = 'auto';
  if (/^(true|1|yes)$/i.test(logPrettyRaw)) logPretty = true;
  else if (/^(false|0|no)$/i.test(logPrettyRaw)) logPretty = false;
  else if (logPrettyRaw !== 'auto') problems.push(`LOG_PRETTY must be auto, true or false (got "${logPrettyRaw}")`);
  if (production) {
    // Log collectors read JSON lines: a pretty-printed production log would be unreadable to them.
    if (logPretty === true) problems.push('LOG_PRETTY=true is not allowed when NODE_ENV=production (production logs are JSON lines)');
    logPretty = false;
  }

  const metrics = readMetrics(reader, problems);

  const cookieSecureRaw = str('COOKIE_SECURE') ?? 'auto';
  let cookieSecure: Config['cookieSecure'] = 'auto';
  if (cookieSecureRaw !== 'auto') cookieSecure = bool('COOKIE_SECURE', false);

  const rateStore = str('RATE_LIMIT_STORE') ?? 'memory';
  if (rateStore !== 'memory' && rateStore !== 'redis') problems.push('RATE_LIMIT_STORE must be memory or redis');
  const redisUrl = str('REDIS_URL');
  if (rateStore === 'redis' && redisUrl === undefined) problems.push('REDIS_URL is required when RATE_LIMIT_STORE=redis');

  const corsOrigins = (str('CORS_ORIGINS') ?? '')
    .split(',')
    .map((o) => o.trim())
    .filter(Boolean);
  for (const origin of corsOrigins) {
    if (!/^https?:\/\/[^/\s]+$/.test(origin)) problems.push(`CORS_ORIGINS entries must be origins like https://app.example (got "${origin}")`);
  }

  const config: Config = {
    env: nodeEnv as Config['env'],
    host: str('HOST') ?? '127.0.0.1',
    port: int('PORT', 3000, 0, 65535),
    jwtSecret,
    jwtIssuer: str('JWT_ISSUER') ?? 'koa-jwt-auth-server',
    jwtAudience: str('JWT_AUDIENCE') ?? 'koa-jwt-auth-server',
    jwtAlgorithm,
    keyPublishLead,
    keyRotationPeriod,
    publicUrl,
    accessTokenTtl: int('ACCESS_TOKEN_TTL', 900, 1, 86_400),
    refreshTokenTtl: int('REFRESH_TOKEN_TTL', 14 * 86_400, 60),
    sessionMaxAge: int('SESSION_MAX_AGE', 30 * 86_400, 60),
    clockSkew: int('CLOCK_SKEW', 30, 0, 300),
    dataDir,
    databaseUrl,
    storeTimeouts,
    adminName,
    adminPassword,
    allowSignup: bool('ALLOW_SIGNUP', false),
    argon2: readArgon2(reader),
    bodyLimit: int('BODY_LIMIT', 16 * 1024, 1024, 10 * 1024 * 1024),
    trustProxy: bool('TRUST_PROXY', false),
    corsOrigins,
    cookieSecure,
    rateLimit: {
      store: rateStore as 'memory' | 'redis',
      redisUrl,
      ipPoints: int('LOGIN_RATE_IP', 50, 1),
      namePoints: int('LOGIN_RATE_NAME', 10, 1),
      accountPoints: int('LOGIN_RATE_ACCOUNT', 20, 1),
      window: int('LOGIN_RATE_WINDOW', 900, 1),
    },
    logLevel,
    logPretty,
    metrics,
    shutdownTimeout: int('SHUTDOWN_TIMEOUT', 10_000, 100),
    revocationPollInterval: int('REVOCATION_POLL_INTERVAL', 2_000, 100),
    auditRetention: int('AUDIT_RETENTION', 90, 1, 36_500),
    refreshReuseInterval: int('REFRESH_REUSE_INTERVAL', 10, 0, 300),
    redisTimeout: int('REDIS_TIMEOUT', 1_000, 50, 60_000),
    http: Object.freeze({
      headersTimeout: int('HEADERS_TIMEOUT', 10_000, 100, 600_000),
      requestTimeout: int('REQUEST_TIMEOUT', 30_000, 100, 3_600_000),
      keepAliveTimeout: int('KEEP_ALIVE_TIMEOUT', 65_000, 100, 3_600_000),
      connectionIdleTimeout: int('CONNECTION_IDLE_TIMEOUT', 10_000, 100, 600_000),
      maxConnections: int('MAX_CONNECTIONS', 2_048, 1, 1_000_000),
      shutdownDrainDelay: int('SHUTDOWN_DRAIN_DELAY', 0, 0, 600_000),
    }),
  };
  if (config.http.headersTimeout > config.http.requestTimeout) problems.push('HEADERS_TIMEOUT must not exceed REQUEST_TIMEOUT');
  // Both count from the signal: a drain as long as the bound would end every shutdown as a timeout.
  if (config.http.shutdownDrainDelay >= config.shutdownTimeout) problems.push('SHUTDOWN_DRAIN_DELAY must be less than SHUTDOWN_TIMEOUT');
  if (metrics.port !== undefined && metrics.port !== 0 && metrics.port === config.port) {
    problems.push('METRICS_PORT must differ from PORT (metrics are never served on the main port)');
  }
  if (config.sessionMaxAge < config.refreshTokenTtl) problems.push('SESSION_MAX_AGE must be at least REFRESH_TOKEN_TTL');
  if (problems.length > 0) throw new ConfigError(problems);
  return Object.freeze(config);
}

/** What tools that manage accounts (the users CLI) need: the store and the hash cost. */
export interface StoreConfig {
  readonly dataDir: string;
  readonly databaseUrl: string;
  readonly storeTimeouts: StoreTimeouts;
  readonly argon2: Config['argon2'];
  /** When set, revocations the tool makes are published to running servers at once. */
  readonly redisUrl: string | undefined;
  readonly redisTimeout: number;
}

/**
 * Parses only `DATA_DIR`, `DATABASE_URL`, the store timeouts, `ARGON2_*` and `REDIS_URL`, exactly as {@link loadConfig} does, for
 * tools that sign no tokens: they must run where the server's `JWT_SECRET` is not at hand.
 * Throws a {@link ConfigError} listing every problem with those keys.
 */
export function loadStoreConfig(env: Env): StoreConfig {
  const problems: string[] = [];
  const reader = envReader(env, problems);
  const config: StoreConfig = {
    ...readDatabase(reader, problems),
    argon2: Object.freeze(readArgon2(reader)),
    redisUrl: reader.str('REDIS_URL'),
    redisTimeout: reader.int('REDIS_TIMEOUT', 1_000, 50, 60_000),
  };
  if (problems.length > 0) throw new ConfigError(problems);
  return Object.freeze(config);
}
