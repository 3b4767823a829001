import { bodyParser } from '@koa/bodyparser';
import Router from '@koa/router';
import type Ajv2020 from 'ajv/dist/2020';
import type { Context, Middleware } from 'koa';
import { AuthError, type FieldError } from '../errors';
import type { Contract, Operation } from './contract';
import type { AuthUses, Handlers } from './handler-types';
import { compileSchema, fieldErrors, MAX_FIELD_ERRORS } from './validation';

export interface ContractRouterOptions {
  contract: Contract;
  handlers: Handlers;
  /** What each handler reads of the caller's token (handlers.ts `AUTH_USE`), held against the contract's security. */
  authUse: AuthUses;
  ajv: Ajv2020;
  /**
   * Mounted on every operation whose security requires a token; on one where it is optional
   * (`{}` beside a scheme), run only when the request has an `Authorization` header.
   */
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

/** The security schemes this server checks: HTTP bearer, the access token (RFC 6750). */
function isBearerScheme(scheme: unknown): boolean {
  const s = scheme as { type?: unknown; scheme?: unknown } | undefined;
  return s?.type === 'http' && typeof s.scheme === 'string' && s.scheme.toLowerCase() === 'bearer';
}

/**
 * Checks that the contract's security gives each handler what it reads, naming every operation
 * whose handler reads the caller's claims while the contract lets it be called without a token,
 * and every security scheme the server does not check. Without it, a contract that lost its
 * `security` served `GET /user` to anyone, and the handler failed on the missing claims.
 */
export function checkSecurity(contract: Contract, authUse: Partial<Record<string, string>>): void {
  // eslint-disable-next-line @typescript-eslint/no-unsafe-member-access -- the parsed contract is untyped (Contract.document)
  const schemes = (contract.document['components']?.['securitySchemes'] ?? {}) as Record<string, unknown>;
  const problems: string[] = [];
  for (const op of contract.operations) {
    const name = `operation "${op.id}" (${op.method.toUpperCase()} ${op.path})`;
    const use = authUse[op.id];
    if (use === undefined) problems.push(`${name} has no entry in the handlers' AUTH_USE`);
    else if (use === 'required' && op.authentication !== 'required') {
      const why =
        op.authentication === 'optional' ? 'makes the token optional (an empty requirement {})' : 'makes it public (security: [] or no security at all)';
      problems.push(`${name}: its handler reads the caller's claims, but openapi.yaml ${why}`);
    } else if (use === 'optional' && op.authentication === 'none') {
      problems.push(
        `${name}: its handler reads the caller's claims when a token is sent, but openapi.yaml makes it public (security: [] or no security at all)`,
      );
    }
    for (const scheme of new Set(op.security.flatMap((r) => Object.keys(r)))) {
      if (!(scheme in schemes)) problems.push(`${name} names security scheme "${scheme}", which components.securitySchemes does not declare`);
      else if (!isBearerScheme(schemes[scheme]))
        problems.push(`${name} names security scheme "${scheme}", which is not HTTP bearer, the only scheme this server checks`);
    }
  }
  if (problems.length > 0) throw new Error(`The contract's security does not give the handlers what they read:\n  - ${problems.join('\n  - ')}`);
}

/**
 * OpenAPI's optional authentication (`{}` beside a scheme): a request without `Authorization`
 * goes on with no claims; one with it is checked like any other, so a bad token is a 401, never
 * quietly treated as anonymous.
 */
function optionalToken(requireToken: Middleware): Middleware {
  return function optionalToken(ctx, next) {
    // eslint-disable-next-line @typescript-eslint/no-unsafe-return -- @types/koa types a middleware's result as any: this is the next one's promise
    return ctx.get('authorization') ? requireToken(ctx, next) : next();
  };
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
        // inflation's unknown Content-Encoding (the charset was checked before parsing).
        throw new AuthError('unsupported_media_type', 'The request body encoding is not supported.', {
          errors: [{ pointer: '/headers/content-encoding', message: 'is not supported' }],
        });
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
    // RFC 8259 §8.1: JSON is UTF-8. @koa/bodyparser decodes every body as UTF-8 whatever the
    // charset says, so another charset would be misread rather than refused.
    const charset = ctx.request.charset.toLowerCase();
    if (charset !== '' && charset !== 'utf-8' && charset !== 'utf8') {
      throw new AuthError('unsupported_media_type', 'The request body must be UTF-8 (charset=utf-8, or no charset).', {
        errors: [{ pointer: '/headers/content-type', message: 'must have charset utf-8 or none' }],
      });
    }
    // eslint-disable-next-line @typescript-eslint/no-unsafe-return -- @types/koa types a middleware's result as any: this is the next one's promise
    return parse(ctx, next);
  };
}

/**
 * The query parameters the contract declares, checked one by one: each arrives as text, and is
 * taken as text when its schema accepts that, else as the JSON it spells (`limit=20` is the
 * number 20, `limit=0x10` nothing). One given twice is refused; others are ignored. The values
 * taken, with the schemas' defaults, land in `ctx.state.query`.
 */
function queryReader(ajv: Ajv2020, op: Operation): ((ctx: Context) => void) | undefined {
  if (!op.query) return undefined;
  const params = op.query.map((p) => ({ ...p, check: compileSchema(ajv, p.schema), fallback: (p.schema as { default?: unknown }).default }));
  return function readQuery(ctx) {
    const out: Record<string, unknown> = {};
    const errors: FieldError[] = [];
    for (const p of params) {
      const raw = ctx.query[p.name];
      const pointer = `/query/${p.name}`;
      if (raw === undefined) {
        if (p.required) errors.push({ pointer, message: 'is required' });
        else if (p.fallback !== undefined) out[p.name] = p.fallback;
        continue;
      }
      if (Array.isArray(raw)) {
        errors.push({ pointer, message: 'must be given once' });
        continue;
      }
      if (p.check(raw)) {
        out[p.name] = raw;
        continue;
      }
      let parsed: unknown;
      try {
        parsed = JSON.parse(raw);
      } catch {
        parsed = undefined;
      }
      if (parsed !== undefined && typeof parsed !== 'string' && p.check(parsed)) out[p.name] = parsed;
      else errors.push(...fieldErrors(p.check.errors, pointer));
    }
    if (errors.length > 0) {
      const shown = errors.slice(0, MAX_FIELD_ERRORS);
      throw new AuthError('invalid_request', `Invalid query: ${shown.map((e) => `${e.pointer} ${e.message}`).join('; ')}`, { errors: shown });
    }
    ctx.state['query'] = out;
  };
}

function validator(ajv: Ajv2020, op: Operation): Middleware | undefined {
  const readQuery = queryReader(ajv, op);
  const checkBody = op.body && compileSchema(ajv, op.body.schema);
  const checkParams = op.params && compileSchema(ajv, op.params);
  const checkCookies = op.cookies && compileSchema(ajv, op.cookies);
  const cookieNames = Object.keys(op.cookies?.['properties'] ?? {});
  const bodyRequired = op.body?.required === true;
  if (!checkBody && !checkParams && !checkCookies && !readQuery) return undefined;
  return function validate(ctx, next) {
    if (checkParams && !checkParams(ctx.params)) {
      const errors = fieldErrors(checkParams.errors, '/params');
      throw new AuthError('invalid_request', `Invalid path parameter: ${errors.map((e) => `${e.pointer} ${e.message}`).join('; ')}`, { errors });
    }
    readQuery?.(ctx);
    if (checkCookies) {
      const cookies: Record<string, string> = {};
      for (const name of cookieNames) {
        const value = ctx.cookies.get(name);
        if (value !== undefined) cookies[name] = value;
      }
      if (!checkCookies(cookies)) {
        const errors = fieldErrors(checkCookies.errors, '/cookies');
        throw new AuthError('invalid_request', `Invalid cookie: ${errors.map((e) => `${e.pointer} ${e.message}`).join('; ')}`, { errors });
      }
    }
    // The parser reads an empty body as {} (and only white space as malformed): a body the
    // contract requires must be there.
    if (bodyRequired && ctx.request.rawBody === '') {
      throw new AuthError('invalid_request', 'A request body is required (a JSON object).', { errors: [{ pointer: '/body', message: 'is required' }] });
    }
    if (checkBody && !checkBody(ctx.request.body)) {
      const errors = fieldErrors(checkBody.errors, '/body');
      throw new AuthError('invalid_request', `Invalid request body: ${errors.map((e) => `${e.pointer} ${e.message}`).join('; ')}`, { errors });
    }
    return next();
  };
}

/** A handler seen from the router, which knows only that it answers a status and maybe a body. */
type AnyHandler = (input: {
  body: unknown;
  params: unknown;
  query: unknown;
  auth: unknown;
  ctx: Context;
}) => Promise<{ status: number; body?: unknown }> | { status: number; body?: unknown };

function dispatch(handler: AnyHandler): Middleware {
  const send = (ctx: Context, reply: { status: number; body?: unknown }) => {
    // Responses of the API are personal or carry tokens: never cached. The few public ones (the
    // key set, the metadata) set their own Cache-Control, as the contract says.
    if (!ctx.response.get('Cache-Control')) ctx.set('Cache-Control', 'no-store');
    ctx.status = reply.status;
    if (reply.body !== undefined) ctx.body = reply.body;
  };
  return function respond(ctx: Context) {
    const reply = handler({
      body: ctx.request.body,
      params: ctx.params,
      query: ctx.state['query'] ?? {},
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
 * the access-token check as the operation's security says (required, or optional), then body
 * parsing and validation compiled once from the same schemas, then the handler.
 */
export function contractRouter(opts: ContractRouterOptions): Router {
  checkHandlers(opts.contract, opts.handlers);
  checkSecurity(opts.contract, opts.authUse);
  const router = new Router();
  const parse = parseJsonBody(opts.bodyLimit);
  const maybeToken = optionalToken(opts.requireToken);
  for (const op of opts.contract.operations) {
    const chain: Middleware[] = [];
    if (op.authentication === 'required') chain.push(opts.requireToken);
    else if (op.authentication === 'optional') chain.push(maybeToken);
    if (op.body) chain.push(parse);
    const validate = validator(opts.ajv, op);
    if (validate) chain.push(validate);
    chain.push(dispatch(opts.handlers[op.id] as unknown as AnyHandler));
    const methods = op.method === 'get' ? ['GET', 'HEAD'] : [op.method.toUpperCase()];
    router.register(op.routerPath, methods, chain as never, { name: op.id });
  }
  return router;
}

/**
 * @koa/router's `allowedMethods` (405 with `Allow` for a method a path lacks, 501 for one it
 * knows nothing of), except that OPTIONS on a known path answers 204 with `Allow` and no body
 * (RFC 9110 §9.3.7) rather than its 200 with an empty text/plain body. An unknown path stays a
 * 404; CORS preflights of allowed origins are answered before this by @koa/cors.
 */
export function allowedMethods(router: Router): Middleware {
  const allowed = router.allowedMethods() as unknown as Middleware;
  return async function allowedMethods(ctx, next) {
    await allowed(ctx, next);
    if (ctx.method === 'OPTIONS' && ctx.status === 200 && ctx.response.get('Allow')) {
      ctx.status = 204;
      ctx.body = null;
    }
  };
}
