import { randomUUID } from 'node:crypto';
import type { Context, Middleware } from 'koa';
import pino from 'pino';
import type { Config } from '../config';
import type { Logger } from '../services/logger';
import type { Metrics } from '../services/metrics';
import { isStaticRequest } from './static-files';

/**
 * Where the server's lines go by default: standard output, written in blocks of at least 4 KiB
 * and at least every 100 ms, rather than one write (a system call through libuv's thread pool) for
 * each line or two, which cost GET /user about a tenth of its CPU (bench/NOTES.md). pino flushes
 * what is left when the process exits.
 */
export function stdoutDestination(): pino.DestinationStream {
  return pino.destination({ dest: 1, minLength: 4096, periodicFlush: 100 });
}

/**
 * The server's logger: JSON lines. Lines about a request come from {@link requestLogger}, which
 * adds its `reqId`. Secrets are redacted as a second line of defence: nothing logs them on purpose.
 */
export function createLogger(level: pino.LevelWithSilent, destination: pino.DestinationStream = stdoutDestination()): pino.Logger {
  return pino(
    {
      level,
      base: undefined,
      redact: {
        paths: [
          'password',
          '*.password',
          'current_password',
          'new_password',
          'access_token',
          'refresh_token',
          '*.access_token',
          '*.refresh_token',
          'authorization',
          'cookie',
          '*.authorization',
          '*.cookie',
          'headers["set-cookie"]',
        ],
        censor: '[redacted]',
      },
    },
    destination,
  );
}

/**
 * Whether the server's lines are printed for people (pino-pretty) rather than as JSON:
 * `LOG_PRETTY=true`, or by default (`auto`) in development when standard output is a terminal.
 * Never under production, whatever is set: log collectors read JSON lines.
 */
export function wantsPrettyLogs(config: Pick<Config, 'env' | 'logPretty'>, stdoutIsTTY: boolean): boolean {
  if (config.env === 'production') return false;
  if (config.logPretty === 'auto') return config.env === 'development' && stdoutIsTTY;
  return config.logPretty;
}

/**
 * A destination printing lines for people, to `destination` (standard output by default).
 * pino-pretty is a devDependency, loaded only here: undefined where it is not installed (an
 * install without dev dependencies), and the caller logs JSON instead.
 */
export function prettyDestination(destination: number | NodeJS.WritableStream = 1): pino.DestinationStream | undefined {
  let pretty: typeof import('pino-pretty');
  try {
    pretty = require('pino-pretty') as typeof import('pino-pretty');
  } catch {
    return undefined;
  }
  return pretty({ destination, sync: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' });
}

const SAFE_ID = /^[A-Za-z0-9._-]{1,64}$/;

/**
 * The logger for lines about this request: `logger` with the request's `reqId`, made on first use
 * and kept on `ctx.state`. Passed explicitly, rather than found through AsyncLocalStorage, which
 * puts a hook on every promise of every request and cost about a fifth of `GET /user`
 * (bench/NOTES.md).
 */
export function requestLogger(ctx: Context, logger: Logger): Logger {
  const state = ctx.state as { log?: Logger; reqId?: string };
  state.log ??= state.reqId === undefined || logger.child === undefined ? logger : logger.child({ reqId: state.reqId });
  return state.log;
}

/**
 * Gives each request an id (the client's `X-Request-Id` when it is a safe token, else a new
 * UUID), echoes it in `X-Request-Id`, and logs one line when the request ends: method, path
 * (never the query string, which may carry secrets), status and duration. Pages, scripts and
 * styles (what `staticFiles` serves) are logged at debug level, API requests at info. With
 * `metrics`, the same duration is counted under the request's operationId (`static` for static
 * files, `unmatched` for the rest): a counter and a histogram, nothing else per request.
 */
export function requestLog(opts: { logger: pino.Logger; metrics?: Pick<Metrics, 'request'> }): Middleware {
  const { logger, metrics } = opts;
  // The request line has fixed keys, none of them a redact path, so it skips redaction, which
  // otherwise runs every top-level value through the wildcard paths (`*.password`, ...) and
  // costs more than three times the rest of the line. Every other line is still redacted.
  const lines = logger.child({}, { redact: [] });
  // A pino child's level is set when it is made, and nothing changes this one's: read it once.
  // API lines are info, static-file lines debug (debug on implies info on).
  const infoOn = lines.isLevelEnabled('info');
  const debugOn = lines.isLevelEnabled('debug');
  return function logRequest(ctx, next) {
    const given = ctx.req.headers['x-request-id'];
    const reqId = typeof given === 'string' && SAFE_ID.test(given) ? given : randomUUID();
    // Node's setHeader directly: a fixed name and a checked token, nothing for Koa's set to do.
    ctx.res.setHeader('X-Request-Id', reqId);
    ctx.state['reqId'] = reqId;
    if (!infoOn && metrics === undefined) return next();
    const start = performance.now();
    const log = () => {
      const isStatic = isStaticRequest(ctx);
      const level = isStatic ? 'debug' : 'info';
      const logging = isStatic ? debugOn : infoOn;
      if (!logging && metrics === undefined) return;
      const ms = performance.now() - start;
      // @koa/router names the route it took: the contract's operationId (contract-router.ts).
      metrics?.request(isStatic ? 'static' : ((ctx as { _matchedRouteName?: string })._matchedRouteName ?? 'unmatched'), ctx.status, ms / 1000);
      if (logging) lines[level]({ reqId, method: ctx.method, path: ctx.path, status: ctx.status, ms: Math.round(ms * 10) / 10 }, 'request');
    };
    return next().then(log, (error: unknown) => {
      log();
      throw error;
    });
  };
}
