import { Writable } from 'node:stream';
import { loadConfig } from '../../src/config';
import { createLogger, prettyDestination, wantsPrettyLogs } from '../../src/http/request-log';

const SECRET = 'x'.repeat(32);

describe('pretty logs only in development', () => {
  test.each([
    ['development on a terminal (the default, auto)', { NODE_ENV: 'development' }, true, true],
    ['development piped (auto)', { NODE_ENV: 'development' }, false, false],
    ['development piped with LOG_PRETTY=true', { NODE_ENV: 'development', LOG_PRETTY: 'true' }, false, true],
    ['development on a terminal with LOG_PRETTY=false', { NODE_ENV: 'development', LOG_PRETTY: 'false' }, true, false],
    ['test on a terminal (auto)', { NODE_ENV: 'test' }, true, false],
    ['test with LOG_PRETTY=true', { NODE_ENV: 'test', LOG_PRETTY: 'true' }, false, true],
  ])('when %s, then pretty is %s', (_what, env, isTTY, want) => {
    expect(wantsPrettyLogs(loadConfig(env), isTTY)).toBe(want);
  });

  test.each([['unset'], ['auto'], ['false'], ['no']])('when NODE_ENV=production and LOG_PRETTY is %s, then lines are JSON even on a terminal', (value) => {
    const env: Record<string, string> = { NODE_ENV: 'production', JWT_SECRET: SECRET };
    if (value !== 'unset') env['LOG_PRETTY'] = value;
    const config = loadConfig(env);
    expect(config.logPretty).toBe(false);
    expect(wantsPrettyLogs(config, true)).toBe(false);
  });

  test('when NODE_ENV=production asks for LOG_PRETTY=true, then the configuration is refused', () => {
    expect(() => loadConfig({ NODE_ENV: 'production', JWT_SECRET: SECRET, LOG_PRETTY: 'true' })).toThrow(
      /LOG_PRETTY=true is not allowed when NODE_ENV=production/,
    );
  });

  test('when lines go through the pretty destination, then they are text for people, not JSON, and secrets are still redacted', () => {
    let out = '';
    const sink = new Writable({
      write(chunk, _enc, cb) {
        out += chunk.toString();
        cb();
      },
    });
    const destination = prettyDestination(sink);
    expect(destination).toBeDefined();
    const logger = createLogger('info', destination);
    logger.info({ event: 'login', password: 'Pretty-Pw-5d1c-kept-secret' }, 'user logged in');
    expect(out).toMatch(/INFO.*user logged in/);
    expect(out).toContain('[redacted]');
    expect(out).not.toContain('Pretty-Pw-5d1c-kept-secret');
    expect(() => JSON.parse(out.split('\n')[0] as string)).toThrow();
  });
});
