import { randomUUID } from 'node:crypto';
import type { Context, Middleware } from 'koa';
import pino from 'pino';
import type { Logger } from '../services/logger';

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
 * (never the query string, which may carry secrets), status and duration.
 */
export function requestLog(opts: { logger: pino.Logger }): Middleware {
  const { logger } = opts;
  // The request line has fixed keys, none of them a redact path, so it skips redaction, which
  // otherwise runs every top-level value through the wildcard paths (`*.password`, ...) and
  // costs more than three times the rest of the line. Every other line is still redacted.
  const lines = logger.child({}, { redact: [] });
  // A pino child's level is set when it is made, and nothing changes this one's: read it once.
  const enabled = lines.isLevelEnabled('info');
  return function logRequest(ctx, next) {
    const given = ctx.req.headers['x-request-id'];
    const reqId = typeof given === 'string' && SAFE_ID.test(given) ? given : randomUUID();
    // Node's setHeader directly: a fixed name and a checked token, nothing for Koa's set to do.
    ctx.res.setHeader('X-Request-Id', reqId);
    ctx.state['reqId'] = reqId;
    if (!enabled) return next();
    const start = performance.now();
    const log = () => {
      lines.info({ reqId, method: ctx.method, path: ctx.path, status: ctx.status, ms: Math.round((performance.now() - start) * 10) / 10 }, 'request');
    };
    return next().then(log, (error: unknown) => {
      log();
      throw error;
    });
  };
}
