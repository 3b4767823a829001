import { STATUS_CODES } from 'node:http';
import type { Context, Middleware } from 'koa';
import { AuthError, type ErrorCode, type FieldError } from '../errors';
import type { Logger } from '../services/logger';
import { requestLogger } from './request-log';

export const PROBLEM_TYPE = 'application/problem+json';

/** An RFC 9457 problem document, as the contract's `Problem` schema spells it. */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail?: string;
  code?: string;
  errors?: FieldError[];
  [extension: string]: unknown;
}

const TOKEN_ERRORS = new Set<ErrorCode>(['invalid_token', 'invalid_refresh_token', 'refresh_token_reused']);

const codeForStatus: Partial<Record<number, ErrorCode>> = {
  400: 'invalid_request',
  404: 'not_found',
  405: 'method_not_allowed',
  413: 'payload_too_large',
  415: 'unsupported_media_type',
};

const messages: Partial<Record<ErrorCode, string>> = {
  not_found: 'There is nothing here.',
  method_not_allowed: 'This method is not allowed here; see the Allow header.',
  payload_too_large: 'The request body is too large.',
  unsupported_media_type: 'The request body must be application/json.',
  malformed_json: 'The request body is not valid JSON (an object is expected).',
};

/** Converts anything thrown downstream to an {@link AuthError}, or undefined for a 5xx. */
function toAuthError(error: unknown): AuthError | undefined {
  if (error instanceof AuthError) return error;
  const e = error as { status?: number; statusCode?: number };
  const status = e?.status ?? e?.statusCode;
  if (typeof status !== 'number' || status < 400 || status >= 500) return undefined;
  const code = codeForStatus[status];
  if (code) return new AuthError(code, messages[code] ?? STATUS_CODES[status] ?? 'Bad request', { cause: error });
  return undefined;
}

function challenge(error: AuthError): string {
  // RFC 6750 §3: every 401 carries a Bearer challenge; error="invalid_token" when one was sent.
  if (!TOKEN_ERRORS.has(error.code)) return 'Bearer realm="api"';
  return `Bearer realm="api", error="invalid_token", error_description="${error.message.replace(/["\\]/g, '')}"`;
}

function send(ctx: Context, problem: Problem) {
  ctx.status = problem.status;
  ctx.type = PROBLEM_TYPE;
  ctx.body = problem;
}

/**
 * First in the chain: turns every error (ours, Koa's HttpError, the router's 405, a
 * body parser's 400/413/415) and every bodiless 4xx into `application/problem+json`. Detail is
 * never shown for a 5xx, and only 5xx are logged as errors.
 */
export function problemResponses(opts: { logger: Logger }): Middleware {
  return async function problems(ctx, next) {
    let error: unknown;
    try {
      await next();
    } catch (e) {
      error = e;
    }
    if (error === undefined) {
      // @koa/router answers a bare 501 for a method it knows nothing of (TRACE, CONNECT) on a
      // path that exists; for the client that is a wrong method like any other (RFC 9110 §15.5.6).
      if (ctx.status === 501 && ctx.body == null && ctx.response.get('Allow')) ctx.status = 405;
      if (ctx.status >= 400 && ctx.body == null) {
        const code = codeForStatus[ctx.status];
        const status = ctx.status;
        send(ctx, {
          type: code ? `urn:problem-type:${code}` : 'about:blank',
          title: STATUS_CODES[status] ?? 'Error',
          status,
          ...(code ? { code, detail: messages[code] ?? STATUS_CODES[status] } : {}),
        });
      }
      return;
    }
    // Too late for an answer of our own: Koa ends the response and reports the error.
    // eslint-disable-next-line @typescript-eslint/only-throw-error -- what downstream threw, passed on as it was
    if (ctx.headerSent) throw error;
    const known = toAuthError(error);
    const e: { status?: unknown; statusCode?: unknown } | null = error;
    const status = e?.status ?? e?.statusCode;
    if (!known && typeof status === 'number' && status >= 400 && status < 500) {
      // Another 4xx from a library (koa-send's 403 for a path that climbs out of its root):
      // the client's fault, answered with its own status and nothing from the error.
      send(ctx, { type: 'about:blank', title: STATUS_CODES[status] ?? 'Error', status, detail: STATUS_CODES[status] ?? 'Error' });
      return;
    }
    if (!known) {
      requestLogger(ctx, opts.logger).error({ err: error, method: ctx.method, path: ctx.path }, 'request failed');
      ctx.remove('Allow');
      send(ctx, { type: 'about:blank', title: STATUS_CODES[500] ?? 'Internal Server Error', status: 500 });
      return;
    }
    if (known.headers) ctx.set(known.headers);
    if (known.status === 401) ctx.set('WWW-Authenticate', challenge(known));
    send(ctx, {
      type: `urn:problem-type:${known.code}`,
      title: STATUS_CODES[known.status] ?? 'Error',
      status: known.status,
      detail: known.message,
      code: known.code,
      ...(known.errors ? { errors: known.errors } : {}),
      ...known.extensions,
    });
  };
}
