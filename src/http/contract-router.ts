import { bodyParser } from '@koa/bodyparser';
import Router from '@koa/router';
import type Ajv2020 from 'ajv/dist/2020';
import type { Context, Middleware } from 'koa';
import { AuthError } from '../errors';
import type { Contract, Operation } from './contract';
import type { Handlers } from './handler-types';
import { compileSchema, fieldErrors } from './validation';

export interface ContractRouterOptions {
  contract: Contract;
  handlers: Handlers;
  ajv: Ajv2020;
  /** Mounted on every operation that does not say `security: []`. */
  requireToken: Middleware;
  /** Bytes. */
  bodyLimit: number;
}

/**
 * Checks that the contract and the handlers match one to one, naming every operation without a
 * handler and every handler without an operation.
 */
export function checkHandlers(contract: Contract, handlers: object): void {
  const ops = new Set<string>(contract.operations.map((o) => o.id));
  const missing = [...ops].filter((id) => typeof (handlers as Record<string, unknown>)[id] !== 'function');
  const extra = Object.keys(handlers).filter((id) => !ops.has(id));
  const problems = [
    ...missing.map((id) => `operation "${id}" in openapi.yaml has no handler`),
    ...extra.map((id) => `handler "${id}" has no operation in openapi.yaml`),
  ];
  if (problems.length > 0) throw new Error(`The handlers do not match the contract:\n  - ${problems.join('\n  - ')}`);
}

function parseJsonBody(limit: number): Middleware {
  const parse = bodyParser({
    enableTypes: ['json'],
    jsonLimit: limit,
    onError(error: Error & { status?: number; type?: string }) {
      if (error.status === 413) {
        throw new AuthError('payload_too_large', `The request body is larger than ${limit} bytes.`, {
          errors: [{ pointer: '/body', message: `must be at most ${limit} bytes` }],
        });
      }
      if (error.status === 415) {
        // raw-body's encoding.unsupported is a charset it cannot decode; else inflation's unknown Content-Encoding.
        const pointer = error.type === 'encoding.unsupported' ? '/headers/content-type' : '/headers/content-encoding';
        throw new AuthError('unsupported_media_type', 'The request body encoding is not supported.', { errors: [{ pointer, message: 'is not supported' }] });
      }
      throw new AuthError('malformed_json', 'The request body is not valid JSON (an object is expected).', {
        cause: error,
        errors: [{ pointer: '/body', message: 'must be a JSON object' }],
      });
    },
  }) as unknown as Middleware;
  return function jsonBody(ctx, next) {
    // The contract takes JSON only; requiring it also keeps cross-site forms out (they cannot
    // send application/json without a CORS preflight).
    if (!ctx.is('application/json')) {
      throw new AuthError('unsupported_media_type', 'The request body must be application/json.', {
        errors: [{ pointer: '/headers/content-type', message: 'must be application/json' }],
      });
    }
    return parse(ctx, next);
  };
}

function validator(ajv: Ajv2020, op: Operation): Middleware | undefined {
  const checkBody = op.body && compileSchema(ajv, op.body.schema);
  const checkParams = op.params && compileSchema(ajv, op.params);
  if (!checkBody && !checkParams) return undefined;
  return function validate(ctx, next) {
    if (checkParams && !checkParams(ctx.params)) {
      const errors = fieldErrors(checkParams.errors, '/params');
      throw new AuthError('invalid_request', `Invalid path parameter: ${errors.map((e) => `${e.pointer} ${e.message}`).join('; ')}`, { errors });
    }
    if (checkBody && !checkBody(ctx.request.body)) {
      const errors = fieldErrors(checkBody.errors, '/body');
      throw new AuthError('invalid_request', `Invalid request body: ${errors.map((e) => `${e.pointer} ${e.message}`).join('; ')}`, { errors });
    }
    return next();
  };
}

/** A handler seen from the router, which knows only that it answers a status and maybe a body. */
type AnyHandler = (input: { body: unknown; params: unknown; auth: unknown; ctx: Context }) => Promise<{ status: number; body?: unknown }> | { status: number; body?: unknown };

function dispatch(handler: AnyHandler): Middleware {
  const send = (ctx: Context, reply: { status: number; body?: unknown }) => {
    // Responses of the API are personal or carry tokens: never cached.
    ctx.set('Cache-Control', 'no-store');
    ctx.status = reply.status;
    if (reply.body !== undefined) ctx.body = reply.body;
  };
  return function respond(ctx: Context) {
    const reply = handler({
      body: ctx.request.body,
      params: ctx.params,
      auth: ctx.state['auth'],
      ctx,
    });
    // A handler that answers at once (GET /user, /healthz) costs no promise.
    if (typeof (reply as Partial<PromiseLike<unknown>>).then === 'function') {
      return (reply as PromiseLike<{ status: number; body?: unknown }>).then((r) => send(ctx, r));
    }
    send(ctx, reply as { status: number; body?: unknown });
    return undefined;
  };
}

/**
 * Builds the API router from the contract: one route per operation, keyed by operationId, with
 * the access-token check on every operation that is not `security: []`, then body parsing and validation
 * compiled once from the same schemas, then the handler.
 */
export function contractRouter(opts: ContractRouterOptions): Router {
  checkHandlers(opts.contract, opts.handlers);
  const router = new Router();
  const parse = parseJsonBody(opts.bodyLimit);
  for (const op of opts.contract.operations) {
    const chain: Middleware[] = [];
    if (!op.public) chain.push(opts.requireToken);
    if (op.body) chain.push(parse);
    const validate = validator(opts.ajv, op);
    if (validate) chain.push(validate);
    chain.push(dispatch(opts.handlers[op.id] as unknown as AnyHandler));
    const methods = op.method === 'get' ? ['GET', 'HEAD'] : [op.method.toUpperCase()];
    router.register(op.routerPath, methods, chain as never, { name: op.id });
  }
  return router;
}
