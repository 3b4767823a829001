import fs from 'node:fs';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { ConfigError, loadConfig } from '../../src/config';

const SECRET = 'x'.repeat(32);

describe('loadConfig', () => {
  test('when nothing is set outside production, then the documented defaults apply and no secret is invented', () => {
    const c = loadConfig({});
    expect(c).toMatchObject({
      env: 'development',
      host: '127.0.0.1',
      port: 3000,
      jwtSecret: undefined,
      adminName: 'admin',
      adminPassword: undefined,
      accessTokenTtl: 900,
      refreshTokenTtl: 14 * 86_400,
      allowSignup: false,
      bodyLimit: 16 * 1024,
      trustProxy: false,
      corsOrigins: [],
      jwtAlgorithm: 'HS256',
      keyPublishLead: 600,
      keyRotationPeriod: 0,
      publicUrl: undefined,
      argon2: { memoryCost: 19_456, timeCost: 2, parallelism: 1, concurrency: Math.max(1, availableParallelism() - 1) },
    });
    expect(c.databaseUrl).toMatch(/^sqlite:.*auth\.db$/);
    // Metrics are off by default, and bound to this machine when turned on.
    expect(c.metrics).toEqual({ port: undefined, host: '127.0.0.1', token: undefined });
    expect(c.logPretty).toBe('auto');
    expect(Object.isFrozen(c)).toBe(true);
  });

  test.each([
    ['production without a secret', { NODE_ENV: 'production' }, /JWT_SECRET is required/],
    ['a secret shorter than 32 bytes', { JWT_SECRET: 'short' }, /JWT_SECRET must be at least 32 bytes/],
    ['a secret of 31 bytes in production', { NODE_ENV: 'production', JWT_SECRET: 'y'.repeat(31) }, /JWT_SECRET must be at least 32 bytes/],
    ['a port that is not a number', { PORT: 'eighty' }, /PORT must be a whole number/],
    ['an access TTL of 0', { ACCESS_TOKEN_TTL: '0' }, /ACCESS_TOKEN_TTL/],
    ['argon2 memory under the OWASP minimum', { ARGON2_MEMORY_KIB: '1024' }, /ARGON2_MEMORY_KIB/],
    ['no hash at a time', { ARGON2_CONCURRENCY: '0' }, /ARGON2_CONCURRENCY/],
    ['a boolean that is not one', { ALLOW_SIGNUP: 'maybe' }, /ALLOW_SIGNUP must be true or false/],
    ['an unknown database', { DATABASE_URL: 'mysql://x' }, /DATABASE_URL must start with/],
    ['a CORS entry that is not an origin', { CORS_ORIGINS: 'https://ok.example,not an origin' }, /CORS_ORIGINS/],
    ['a drain as long as the shutdown bound', { SHUTDOWN_DRAIN_DELAY: '10000' }, /SHUTDOWN_DRAIN_DELAY must be less than SHUTDOWN_TIMEOUT/],
    ['a statement timeout past the query timeout', { STORE_STATEMENT_TIMEOUT: '6000' }, /STORE_STATEMENT_TIMEOUT must not exceed STORE_QUERY_TIMEOUT/],
    ['a headers timeout past the request timeout', { HEADERS_TIMEOUT: '40000' }, /HEADERS_TIMEOUT must not exceed REQUEST_TIMEOUT/],
    ['a reuse interval over five minutes', { REFRESH_REUSE_INTERVAL: '301' }, /REFRESH_REUSE_INTERVAL/],
    ['Redis limits without REDIS_URL', { RATE_LIMIT_STORE: 'redis' }, /REDIS_URL is required/],
    ['a metrics port that is not a number', { METRICS_PORT: 'nine' }, /METRICS_PORT must be a whole number/],
    ['the metrics on the main port', { PORT: '4000', METRICS_PORT: '4000' }, /METRICS_PORT must differ from PORT/],
    ['a short metrics token', { METRICS_PORT: '9464', METRICS_TOKEN: 'short' }, /METRICS_TOKEN must be at least 16 characters/],
    ['LOG_PRETTY that is not a boolean', { LOG_PRETTY: 'sometimes' }, /LOG_PRETTY must be auto, true or false/],
    ['pretty logs in production', { NODE_ENV: 'production', JWT_SECRET: SECRET, LOG_PRETTY: 'true' }, /LOG_PRETTY=true is not allowed/],
    ['a short admin password', { ADMIN_PASSWORD: 'short' }, /ADMIN_PASSWORD must be at least 8 characters/],
    ['a common admin password', { ADMIN_PASSWORD: 'Password123' }, /ADMIN_PASSWORD is one of the most common passwords/],
    ['the admin name as its password', { ADMIN_NAME: 'superuser-1', ADMIN_PASSWORD: 'SUPERUSER-1' }, /ADMIN_PASSWORD must not be the name/],
    ['an algorithm this server does not sign with', { JWT_ALGORITHM: 'RS256' }, /JWT_ALGORITHM must be one of HS256, ES256, EdDSA/],
    ['the none algorithm', { JWT_ALGORITHM: 'none' }, /JWT_ALGORITHM must be one of/],
    [
      'a rotation period no longer than the publish lead',
      { JWT_KEY_ROTATION_PERIOD: '600' },
      /JWT_KEY_ROTATION_PERIOD must be longer than JWT_KEY_PUBLISH_LEAD/,
    ],
    ['a public URL with a query', { PUBLIC_URL: 'https://auth.example/?x=1' }, /PUBLIC_URL must be an http\(s\) URL/],
    ['a public URL that is not http', { PUBLIC_URL: 'ftp://auth.example' }, /PUBLIC_URL must be an http\(s\) URL/],
  ])('when given %s, then it refuses, naming the key', (_name, env, want) => {
    expect(() => loadConfig(env)).toThrow(want);
  });

  test('when several keys are wrong, then one error lists them all', () => {
    try {
      loadConfig({ NODE_ENV: 'production', PORT: '-1', LOG_LEVEL: 'loud' });
      throw new Error('expected a ConfigError');
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      const problems = (error as ConfigError).problems.join('\n');
      expect(problems).toMatch(/JWT_SECRET/);
      expect(problems).toMatch(/PORT/);
      expect(problems).toMatch(/LOG_LEVEL/);
    }
  });

  test('when METRICS_PORT, METRICS_HOST and METRICS_TOKEN are set, then the metrics listener is configured with them', () => {
    const c = loadConfig({ METRICS_PORT: '9464', METRICS_HOST: '0.0.0.0', METRICS_TOKEN: 'a-scrape-token-of-24-chars' });
    expect(c.metrics).toEqual({ port: 9464, host: '0.0.0.0', token: 'a-scrape-token-of-24-chars' });
  });

  test('when production has a long enough secret, then it starts with it and without an admin password', () => {
    const c = loadConfig({ NODE_ENV: 'production', JWT_SECRET: SECRET });
    expect(c.jwtSecret).toBe(SECRET);
    expect(c.adminPassword).toBeUndefined();
  });
});

describe('the documentation of the configuration', () => {
  const root = path.join(__dirname, '..', '..');
  const read = (file: string) => fs.readFileSync(path.join(root, file), 'utf8');
  // Every key loadConfig reads is named as a string literal in upper case in config.ts.
  const keys = [...new Set([...read('src/config.ts').matchAll(/\('([A-Z][A-Z0-9_]+)'/g)].map((m) => m[1] as string))];

  test('when config.ts reads a key, then .env.example sets it or shows it commented out, and the README table names it', () => {
    expect(keys.length).toBeGreaterThan(20);
    const example = read('.env.example');
    const readme = read('README.md');
    const undocumented = keys.filter((key) => !new RegExp(`^(# )?${key}=`, 'm').test(example) || !readme.includes(`\`${key}\``));
    expect(undocumented).toEqual([]);
  });
});
