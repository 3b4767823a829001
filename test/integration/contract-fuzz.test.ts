import fc from 'fast-check';
import jwt from 'jsonwebtoken';
import type { Response } from 'supertest';
import { loadContract, type Operation } from '../../src/http/contract';
import { compileSchema, createAjv } from '../../src/http/validation';
import { makeApp, type TestApp } from '../support/make-app';
import { type Charset, invalidObjects, invalidScalars, keepOnly, type Mutation, resolveRef, valid } from '../support/schema-arbitrary';

/**
 * A property-based contract test, schemathesis-style: for every operation of openapi.yaml,
 * requests generated from the contract's own schemas (valid ones, and ones broken in each way the
 * schemas allow: wrong types, missing and extra properties, strings too long or too short, values
 * outside an enum or a pattern, malformed JSON, wrong content types, no body, too big a body,
 * wrong methods), each with no token, a forged one or a valid one of each role. Every answer must
 * have a status the operation declares (exactly: a range key does not count), the declared
 * content type, a body valid against the declared schema, the declared headers right, and never
 * a 5xx; a request the schemas refuse and a request without a valid token to a guarded operation
 * must not succeed. Each kind of failure is shrunk by fast-check to a small example.
 *
 * Fixed seed and bounded count; another seed with CONTRACT_FUZZ_SEED=<n>, more requests per
 * operation with CONTRACT_FUZZ_RUNS=<n>.
 */
const SEED = Number(process.env['CONTRACT_FUZZ_SEED'] ?? 20_261_212);
const RUNS = Math.max(1, Math.min(Number(process.env['CONTRACT_FUZZ_RUNS'] ?? 200), 5_000));
/** Time for shrinking failures: in all, for those of one operation, and for one failure. */
const SHRINK_TOTAL_MS = 10_000;
const SHRINK_BUDGET_MS = 2_000;
const SHRINK_ONE_MS = 1_000;
let shrinkSpent = 0;
/** Failures shrunk per operation; the rest are listed with the example first seen. */
const SHRINK_MAX = 8;
/** Logins a test may make again when the fuzzer ended its sessions (logout, password change). */
const RELOGINS = 8;
/** CONTRACT_FUZZ_VERBOSE=1 prints, per operation, the statuses each kind of request got. */
const VERBOSE = process.env['CONTRACT_FUZZ_VERBOSE'] === '1';

type Node = Record<string, any>;

const contract = loadContract();
const doc = contract.document;
const ajv = createAjv(contract);
const compiled = new Map<unknown, ReturnType<typeof compileSchema>>();
/** ajv's validator for a schema of the contract (refs resolved against it), compiled once. */
function validator(schema: unknown): ReturnType<typeof compileSchema> {
  let fn = compiled.get(schema);
  if (!fn) {
    fn = compileSchema(ajv, schema as Node);
    compiled.set(schema, fn);
  }
  return fn;
}
/** The same, as a predicate. */
function compile(schema: unknown): (v: unknown) => boolean {
  const fn = validator(schema);
  return (v: unknown) => fn(v);
}

// ---- what a generated request is ----

type TokenKind = 'none' | 'user' | 'admin' | 'other-secret' | 'alg-none' | 'expired' | 'altered-claims' | 'altered-signature' | 'not-bearer' | 'garbage';
const VALID_TOKENS: ReadonlySet<TokenKind> = new Set(['user', 'admin']);

type Body = { mode: 'none' } | { mode: 'json'; value: unknown; contentType: string } | { mode: 'raw'; text: string; contentType: string | undefined };

interface Shape {
  /** What was generated: `valid`, or the way it was broken (`body: name too long`). */
  kind: string;
  method: string;
  /** Parameter values by `in:name`, before encoding. */
  params: Record<string, string | undefined>;
  body: Body;
}

interface FuzzRequest extends Shape {
  /** Fill the fields whose names the fuzzer knows (name, password, refresh_token, id) with its own account's. */
  known: boolean;
  token: TokenKind;
  /** `Sec-Fetch-Site`, as a browser would send it. */
  site: 'none' | 'same-origin' | 'cross-site';
}

interface Param {
  in: 'path' | 'query' | 'header' | 'cookie';
  name: string;
  required: boolean;
  schema: Node;
  check: (v: unknown) => boolean;
}

const key = (p: Param) => `${p.in}:${p.name}`;
const charsetOf = (p: Param): Charset => (p.in === 'cookie' ? 'cookie' : p.in === 'header' ? 'header' : 'json');

/** The operation's parameters, path-level and its own (its own win), refs resolved. */
function parametersOf(op: Operation): Param[] {
  const item = doc['paths'][op.path] as Node;
  const byKey = new Map<string, Param>();
  for (const raw of [...(item['parameters'] ?? []), ...(item[op.method]['parameters'] ?? [])]) {
    const p = resolveRef(doc, raw);
    const param: Param = {
      in: p['in'],
      name: p['name'],
      required: p['in'] === 'path' || p['required'] === true,
      schema: p['schema'] ?? {},
      check: compile(p['schema'] ?? {}),
    };
    byKey.set(key(param), param);
  }
  return [...byKey.values()];
}

/** A parameter arrives as text: numbers and booleans are read back before the check. */
function paramIsValid(p: Param, value: string | undefined): boolean {
  if (value === undefined) return !p.required;
  if (p.check(value)) return true;
  try {
    return p.check(JSON.parse(value));
  } catch {
    return false;
  }
}

/** Fields the fuzzer can fill with values of its own account (see {@link FuzzRequest.known}). */
const KNOWN_FIELDS: ReadonlySet<string> = new Set(['name', 'password', 'current_password', 'refresh_token', 'id']);

/** Paths that are also a page of public/ (GET serves the HTML page, not an operation). */
const PAGE_PATHS: ReadonlySet<string> = new Set(['/login']);

const METHODS = ['GET', 'PUT', 'POST', 'DELETE', 'PATCH', 'OPTIONS', 'TRACE'];

const WRONG_CONTENT_TYPES = [
  'text/plain',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=x',
  'application/xml',
  'text/json',
  'application/merge-patch+json',
];
const MALFORMED_JSON = ['{', '{"name":', "{'name':'a'}", '{"a":1,}', 'NaN', 'undefined', '[1,2', '{"a":"\\x"}', '\u0000', 'nul'];
const isJson = (text: string) => {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
};

/**
 * Every kind of request for one operation, weighted: about half valid, the rest spread over the
 * ways to break the body, the parameters and the method.
 */
function requestsFor(op: Operation, bodyLimit: number): fc.Arbitrary<FuzzRequest> {
  const params = parametersOf(op);
  const paramArb = (p: Param): fc.Arbitrary<string> =>
    keepOnly(
      valid(doc, p.schema, charsetOf(p)).map((v) => (typeof v === 'string' ? v : JSON.stringify(v))),
      (v) => p.in !== 'path' || v !== '',
      `${p.in} ${p.name}`,
    );
  const validParams: fc.Arbitrary<Record<string, string | undefined>> = fc.record(Object.fromEntries(params.map((p) => [key(p), paramArb(p)])), {
    requiredKeys: params.filter((p) => p.required).map(key),
  });

  const bodySchema = op.body?.schema;
  const jsonBody = (value: fc.Arbitrary<unknown>, types = ['application/json']) =>
    fc.tuple(value, fc.constantFrom(...types)).map(([v, contentType]): Body => ({ mode: 'json', value: v, contentType }));
  const validBody: fc.Arbitrary<Body> = !bodySchema
    ? fc.constant<Body>({ mode: 'none' })
    : op.body?.required
      ? jsonBody(valid(doc, bodySchema), ['application/json', 'application/json; charset=utf-8'])
      : fc.oneof({ weight: 4, arbitrary: jsonBody(valid(doc, bodySchema)) }, { weight: 1, arbitrary: fc.constant<Body>({ mode: 'none' }) });

  const branches: { weight: number; arbitrary: fc.Arbitrary<Shape> }[] = [];
  const shape = (kind: string, p: fc.Arbitrary<Record<string, string | undefined>>, b: fc.Arbitrary<Body>) =>
    fc.tuple(p, b).map(([ps, body]): Shape => ({ kind, method: op.method.toUpperCase(), params: ps, body }));

  branches.push({ weight: 48, arbitrary: shape('valid', validParams, validBody) });

  // Broken bodies.
  if (bodySchema) {
    const bodyMutations: Mutation<Body>[] = invalidObjects(doc, bodySchema, compile).map((m) => ({
      label: `body: ${m.label}`,
      arbitrary: jsonBody(m.arbitrary),
    }));
    const text = valid(doc, bodySchema).map((v) => JSON.stringify(v));
    bodyMutations.push(
      {
        label: 'body: malformed JSON',
        arbitrary: keepOnly(
          fc.oneof(
            fc.constantFrom(...MALFORMED_JSON),
            fc.tuple(text, fc.nat()).map(([s, n]) => s.slice(0, n % Math.max(1, s.length))),
          ),
          (s) => s !== '' && !isJson(s),
          'malformed JSON',
        ).map((s): Body => ({ mode: 'raw', text: s, contentType: 'application/json' })),
      },
      {
        label: 'body: wrong content type',
        arbitrary: fc.tuple(text, fc.constantFrom(...WRONG_CONTENT_TYPES)).map(([s, contentType]): Body => ({ mode: 'raw', text: s, contentType })),
      },
      { label: 'body: no content type', arbitrary: text.map((s): Body => ({ mode: 'raw', text: s, contentType: undefined })) },
      {
        label: 'body: unsupported charset',
        arbitrary: fc
          .tuple(text, fc.constantFrom('x-unknown', 'utf-7', 'klingon'))
          .map(([s, cs]): Body => ({ mode: 'raw', text: s, contentType: `application/json; charset=${cs}` })),
      },
      { label: 'body: none', arbitrary: fc.constant<Body>({ mode: 'none' }) },
      { label: 'body: empty', arbitrary: fc.constant<Body>({ mode: 'raw', text: '', contentType: 'application/json' }) },
      {
        label: 'body: larger than the limit',
        arbitrary: fc.tuple(valid(doc, bodySchema), fc.integer({ min: 1, max: 4_096 })).map(([v, extra]): Body => {
          const base = JSON.stringify(v && typeof v === 'object' && !Array.isArray(v) ? v : {});
          const pad = 'x'.repeat(bodyLimit + extra);
          return { mode: 'raw', text: base === '{}' ? `{"padding":"${pad}"}` : `${base.slice(0, -1)},"padding":"${pad}"}`, contentType: 'application/json' };
        }),
      },
    );
    const each = Math.max(1, Math.round(36 / bodyMutations.length));
    for (const m of bodyMutations) branches.push({ weight: each, arbitrary: shape(m.label, validParams, m.arbitrary) });
  }

  // A body the operation does not take: ignored or refused, but answered as declared.
  if (!bodySchema) {
    const unexpected = fc.oneof(
      jsonBody(fc.jsonValue({ maxDepth: 2 })),
      fc
        .tuple(fc.jsonValue({ maxDepth: 2 }), fc.constantFrom(...WRONG_CONTENT_TYPES))
        .map(([v, contentType]): Body => ({ mode: 'raw', text: JSON.stringify(v), contentType })),
      fc
        .integer({ min: 1, max: 4_096 })
        .map((extra): Body => ({ mode: 'raw', text: `{"padding":"${'x'.repeat(bodyLimit + extra)}"}`, contentType: 'application/json' })),
    );
    branches.push({ weight: 4, arbitrary: shape('body: where none is taken', validParams, unexpected) });
  }

  // Broken parameters.
  const paramMutations: Mutation<Record<string, string | undefined>>[] = [];
  for (const p of params) {
    const isString = resolveRef(doc, p.schema)['type'] === 'string';
    for (const m of invalidScalars(doc, p.schema, p.check, charsetOf(p))) {
      if (m.label === 'wrong type' && isString) continue; // on the wire every parameter is text
      // An empty path segment is another path, not this operation with a short parameter.
      if (m.label === 'too short' && p.in === 'path' && Number(resolveRef(doc, p.schema)['minLength']) <= 1) continue;
      const bad = keepOnly(
        m.arbitrary.map((v) => (typeof v === 'string' ? v : JSON.stringify(v))),
        (v) => !paramIsValid(p, v) && (p.in !== 'path' || v !== ''),
        `${p.in} ${p.name} ${m.label}`,
      );
      paramMutations.push({ label: `${p.in} ${p.name} ${m.label}`, arbitrary: fc.tuple(validParams, bad).map(([ps, v]) => ({ ...ps, [key(p)]: v })) });
    }
    if (p.required && p.in !== 'path') {
      paramMutations.push({ label: `${p.in} ${p.name} missing`, arbitrary: validParams.map((ps) => ({ ...ps, [key(p)]: undefined })) });
    }
  }
  for (const m of paramMutations)
    branches.push({ weight: Math.max(1, Math.round(12 / paramMutations.length)), arbitrary: shape(m.label, m.arbitrary, validBody) });

  // Methods the path does not have (HEAD comes with GET).
  const item = doc['paths'][op.path] as Node;
  const wrong = METHODS.filter((m) => !item[m.toLowerCase()] && !(m === 'HEAD' && item['get']));
  if (wrong.length > 0) {
    branches.push({
      weight: 6,
      arbitrary: fc
        .tuple(validParams, fc.constantFrom(...wrong))
        .map(([ps, method]): Shape => ({ kind: `method ${method}`, method, params: ps, body: { mode: 'none' } })),
    });
  }

  // Cross-shrinking: a shrunk example keeps a token only when the failure needs one.
  const token = fc.oneof(
    { withCrossShrink: true },
    { weight: 2, arbitrary: fc.constant<TokenKind>('none') },
    { weight: 3, arbitrary: fc.constant<TokenKind>('user') },
    { weight: 2, arbitrary: fc.constant<TokenKind>('admin') },
    { weight: 4, arbitrary: fc.constantFrom<TokenKind>('other-secret', 'alg-none', 'expired', 'altered-claims', 'altered-signature', 'not-bearer', 'garbage') },
  );
  const site = fc.oneof(
    { withCrossShrink: true },
    { weight: 8, arbitrary: fc.constant('none' as const) },
    { weight: 1, arbitrary: fc.constantFrom('same-origin' as const, 'cross-site' as const) },
  );
  // Now and then the fields the fuzzer has values of (its account's name and password, its
  // refresh token, its session id) get them, as schemathesis's links would: that is how a request
  // gets past "no such user" to a login, a refresh, a password change or an ended session.
  const bodyNames = Object.keys(bodySchema ? ((resolveRef(doc, bodySchema)['properties'] ?? {}) as Node) : {});
  const canKnow = [...bodyNames, ...params.map((p) => p.name)].some((n) => KNOWN_FIELDS.has(n));
  const known = canKnow
    ? fc.oneof({ withCrossShrink: true }, { weight: 3, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) })
    : fc.constant(false);
  return fc.tuple(fc.oneof(...branches), token, site, known).map(([s, t, si, k]): FuzzRequest => ({ ...s, known: k, token: t, site: si }));
}

/** Whether the contract refuses the request as generated (before the fuzzer's own values go in). */
function isInvalid(op: Operation, req: FuzzRequest): boolean {
  if (req.kind.startsWith('method ')) return req.method !== 'OPTIONS' && !(req.method === 'GET' && PAGE_PATHS.has(op.path));
  for (const p of parametersOf(op)) if (!paramIsValid(p, req.params[key(p)])) return true;
  const b = req.body;
  if (b.mode === 'none') return op.body?.required === true;
  if (!op.body) return false;
  if (b.mode === 'json') return !compile(op.body.schema)(b.value);
  // Raw bodies are malformed, of the wrong type, too big, or empty (no body at all).
  return b.text !== '' || op.body.required;
}

// ---- sending ----

const OTHER_SECRET = 'another-secret-that-is-also-at-least-32-bytes';
const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
const claimsOf = (token: string) => JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as Record<string, unknown>;

interface Account {
  role: 'user' | 'admin';
  name: string;
  password: string;
  access: string;
  refresh: string;
  sid: string;
}

interface Sent {
  res: Response;
  /** The request as sent, for the report. */
  line: string;
}

/** The fuzzer's accounts, logged in again (a few times at most) when the fuzzer ended their sessions. */
function accounts(t: TestApp) {
  const pool = new Map<'user' | 'admin', Account>();
  let relogins = RELOGINS;
  const login = async (role: 'user' | 'admin', name: string, password: string): Promise<Account> => {
    const pair = await t.login(name, password);
    const account: Account = { role, name, password, access: pair.access, refresh: pair.refresh, sid: String(claimsOf(pair.access)['sid']) };
    pool.set(role, account);
    return account;
  };
  return {
    async setUp() {
      for (const role of ['user', 'admin'] as const) {
        const u = await t.makeUser({ role });
        await login(role, u.name, u.password);
      }
    },
    /** The account of `role`, its session live again when that is still allowed. */
    async live(role: 'user' | 'admin', wantLive: boolean): Promise<Account> {
      const a = pool.get(role) as Account;
      if (!wantLive || relogins <= 0 || !t.app.services.revocations.has(a.sid)) return a;
      relogins -= 1;
      try {
        return await login(role, a.name, a.password);
      } catch {
        relogins = 0; // refused (limits): go on with the dead session, answered 401
        return a;
      }
    },
    update(role: 'user' | 'admin', change: Partial<Account>) {
      pool.set(role, { ...(pool.get(role) as Account), ...change });
    },
  };
}

function authorization(kind: TokenKind, a: Account, t: TestApp): string | undefined {
  const now = Math.floor(t.clock.now() / 1000);
  const [header, payload, signature] = a.access.split('.') as [string, string, string];
  const claims = claimsOf(a.access);
  switch (kind) {
    case 'none':
      return undefined;
    case 'user':
    case 'admin':
      return `Bearer ${a.access}`;
    case 'other-secret':
      return `Bearer ${t.sign({ ...claims, iat: now, exp: now + 600 }).replace(/\.[^.]+$/, `.${jwt.sign({ ...claims, iat: now, exp: now + 600 }, OTHER_SECRET, { algorithm: 'HS256' }).split('.')[2]}`)}`;
    case 'alg-none':
      return `Bearer ${b64({ alg: 'none', typ: 'JWT' })}.${b64({ ...claims, role: 'admin' })}.`;
    case 'expired':
      return `Bearer ${t.sign({ ...claims, iat: now - 7_200, exp: now - 3_600 })}`;
    case 'altered-claims':
      return `Bearer ${header}.${b64({ ...claims, role: 'admin' })}.${signature}`;
    case 'altered-signature': {
      const i = Math.floor(signature.length / 2);
      return `Bearer ${header}.${payload}.${signature.slice(0, i)}${signature[i] === 'A' ? 'B' : 'A'}${signature.slice(i + 1)}`;
    }
    case 'not-bearer':
      return `Basic ${Buffer.from(`${a.name}:${a.password}`).toString('base64')}`;
    case 'garbage':
      return 'Bearer not.a.jwt';
  }
}

function sender(op: Operation, t: TestApp, pool: ReturnType<typeof accounts>) {
  const params = parametersOf(op);
  return async function send(req: FuzzRequest): Promise<Sent> {
    const role = req.token === 'admin' ? 'admin' : 'user';
    const a = await pool.live(role, VALID_TOKENS.has(req.token) || req.known);
    const values = { ...req.params };
    let body = req.body;
    if (req.known) {
      // Only fields generated valid get the fuzzer's values: a field broken on purpose stays broken.
      const known: Record<string, string> = { name: a.name, password: a.password, current_password: a.password, refresh_token: a.refresh, id: a.sid };
      for (const p of params)
        if (values[key(p)] !== undefined && known[p.name] !== undefined && paramIsValid(p, values[key(p)])) values[key(p)] = known[p.name];
      if (op.body && body.mode === 'json' && body.value && typeof body.value === 'object' && !Array.isArray(body.value)) {
        const properties = (resolveRef(doc, op.body.schema)['properties'] ?? {}) as Node;
        const v = { ...(body.value as Record<string, unknown>) };
        for (const k of Object.keys(v)) if (known[k] !== undefined && properties[k] && compile(properties[k])(v[k])) v[k] = known[k];
        body = { ...body, value: v };
      }
    }
    let url = op.path.replace(/\{([^}]+)\}/g, (_, name: string) => encodeURIComponent(values[`path:${name}`] ?? ''));
    const query = params
      .filter((p) => p.in === 'query' && values[key(p)] !== undefined)
      .map((p) => `${encodeURIComponent(p.name)}=${encodeURIComponent(values[key(p)] as string)}`);
    if (query.length > 0) url += `?${query.join('&')}`;
    const headers: Record<string, string> = {};
    const auth = authorization(req.token, a, t);
    if (auth !== undefined) headers['Authorization'] = auth;
    if (req.site !== 'none') headers['Sec-Fetch-Site'] = req.site;
    for (const p of params.filter((x) => x.in === 'header' && values[key(x)] !== undefined)) headers[p.name] = values[key(p)] as string;
    const cookies = params.filter((p) => p.in === 'cookie' && values[key(p)] !== undefined).map((p) => `${p.name}=${values[key(p)] as string}`);
    if (cookies.length > 0) headers['Cookie'] = cookies.join('; ');
    let text: string | undefined;
    if (body.mode === 'json') {
      text = JSON.stringify(body.value);
      headers['Content-Type'] = body.contentType;
    } else if (body.mode === 'raw') {
      text = body.text;
      if (body.contentType !== undefined) headers['Content-Type'] = body.contentType;
    }
    let r = t.http()[req.method.toLowerCase() as 'get'](url);
    for (const [k, v] of Object.entries(headers)) r = r.set(k, v);
    // A Buffer goes without a Content-Type of superagent's choosing.
    if (text !== undefined) r = r.send(body.mode === 'raw' && body.contentType === undefined ? Buffer.from(text) : text);
    const res = await r;

    // The fuzzer's own state, so that its accounts stay usable.
    if (req.known && res.status < 300 && body.mode === 'json') {
      const v = body.value as Record<string, unknown>;
      if (typeof v['new_password'] === 'string') pool.update(role, { password: v['new_password'] });
      const cookie = ([] as string[]).concat(res.headers['set-cookie'] ?? []).find((c) => c.startsWith('refresh_token=') && !c.startsWith('refresh_token=;'));
      const fresh = (res.body as { refresh_token?: unknown })?.refresh_token ?? cookie?.split(';')[0]?.slice('refresh_token='.length);
      if (typeof v['refresh_token'] === 'string' && typeof fresh === 'string' && fresh !== '') pool.update(role, { refresh: fresh });
    }
    const shown = Object.entries(headers).map(([k, v]) => `${k}: ${v.length > 80 ? `${v.slice(0, 80)}…` : v}`);
    const bodyShown = text === undefined ? '' : ` body(${text.length}) ${text.length > 240 ? `${text.slice(0, 240)}…` : text}`;
    return {
      res,
      line: `${req.method} ${url} token=${req.token}${req.known ? ' (own values)' : ''}${shown.length ? ` [${shown.join(' | ')}]` : ''}${bodyShown}`,
    };
  };
}

// ---- checking ----

interface Violation {
  /** Stable across examples of one failure, for grouping and shrinking. */
  cls: string;
  detail: string;
}

const mainType = (res: Response) =>
  String(res.headers['content-type'] ?? '')
    .split(';')[0]
    ?.trim()
    .toLowerCase() ?? '';

function check(op: Operation, req: FuzzRequest, res: Response): Violation[] {
  const out: Violation[] = [];
  const responses = doc['paths'][op.path][op.method]['responses'] as Node;
  const status = res.status;
  const text = res.text ?? '';
  if (status >= 500) out.push({ cls: '5xx', detail: `a ${status}: ${text.slice(0, 300)}` });
  if (isInvalid(op, req) && status < 300)
    out.push({ cls: 'accepted a request the contract refuses', detail: `${status} for a request that breaks the contract` });
  // A wrong method is answered before the guard (405, or OPTIONS's Allow): not this operation.
  if (!op.public && !req.kind.startsWith('method ') && !VALID_TOKENS.has(req.token) && status < 300)
    out.push({ cls: 'answered without a valid token', detail: `${status} with token=${req.token}` });
  // OPTIONS belongs to the path, not to an operation: info.description says every path answers
  // it with 204, an Allow header naming the path's methods, and no body.
  if (req.method === 'OPTIONS') {
    const allow = String(res.headers['allow'] ?? '');
    if (status !== 204 || text !== '' || !allow.split(/,\s*/).includes(op.method.toUpperCase())) {
      out.push({ cls: 'OPTIONS not as described', detail: `${status}, Allow: ${allow || '(none)'}, body ${text.slice(0, 100) || '(empty)'}` });
    }
    return out;
  }
  // GET of a page path is the page (public/login.html), which the contract does not describe.
  if (req.method === 'GET' && PAGE_PATHS.has(op.path) && !(op.method === 'get')) {
    if (status !== 200 || mainType(res) !== 'text/html') out.push({ cls: 'page not served', detail: `GET ${op.path}: ${status} ${mainType(res)}` });
    return out;
  }
  if (!(String(status) in responses)) {
    out.push({
      cls: 'undeclared status',
      detail: `${status} is not declared (declared: ${Object.keys(responses).join(', ')}); content type ${mainType(res) || 'none'}, body ${text.slice(0, 200) || '(empty)'}`,
    });
    return out;
  }
  const declared = resolveRef(doc, responses[String(status)]);
  for (const [name, h] of Object.entries((declared['headers'] ?? {}) as Node)) {
    const header = resolveRef(doc, h);
    const value = res.headers[name.toLowerCase()] as string | string[] | undefined;
    if (value === undefined) {
      if (header['required'] === true) out.push({ cls: `header ${name} missing`, detail: `the required header ${name} is missing` });
      continue;
    }
    if (!header['schema']) continue;
    const isValid = compile(header['schema']);
    // Set-Cookie is the one header sent once per value (RFC 6265 §3): each line is checked.
    const lines = Array.isArray(value) ? (name.toLowerCase() === 'set-cookie' ? value : [value.join(', ')]) : [value];
    for (const v of lines) {
      if (!isValid(v) && !(/^-?\d+$/.test(v) && isValid(Number(v)))) out.push({ cls: `header ${name} breaks its schema`, detail: `${name}: ${v}` });
    }
  }
  const content = declared['content'] as Node | undefined;
  if (!content) {
    if (text !== '') out.push({ cls: 'a body where none is declared', detail: `${mainType(res)} ${text.slice(0, 200)}` });
    return out;
  }
  const type = mainType(res);
  const media = Object.entries(content).find(([k]) => k.toLowerCase() === type)?.[1] as Node | undefined;
  if (!media) {
    out.push({
      cls: `content type ${type || 'none'}`,
      detail: `content type ${type || 'none'}, declared ${Object.keys(content).join(', ')}; body ${text.slice(0, 200) || '(empty)'}`,
    });
    return out;
  }
  if (
    type === 'application/problem+json' &&
    typeof (res.body as { status?: unknown })?.status === 'number' &&
    (res.body as { status: number }).status !== status
  ) {
    out.push({ cls: 'problem status differs', detail: `the problem says status ${(res.body as { status: number }).status}` });
  }
  if (!media['schema']) return out;
  let parsed: unknown = text;
  if (/[/+]json$/.test(type)) {
    try {
      parsed = JSON.parse(text);
    } catch {
      out.push({ cls: 'body is not JSON', detail: text.slice(0, 200) || '(empty)' });
      return out;
    }
  }
  const fn = validator(media['schema']);
  if (!fn(parsed)) {
    const first = fn.errors?.[0];
    out.push({
      cls: `body breaks its schema at ${first?.instancePath || '/'} (${first?.keyword ?? '?'})`,
      detail: `${ajv.errorsText(fn.errors)}: ${text.slice(0, 200)}`,
    });
  }
  return out;
}

// ---- running ----

interface Failure {
  signature: string;
  kind: string;
  status: number;
  classes: string[];
  count: number;
  tokens: Set<TokenKind>;
  firstRun: number;
  example: string;
  detail: string;
  shrunk?: boolean;
}

interface OperationResult {
  id: string;
  requests: number;
  conforming: number;
  statuses: Record<number, number>;
  /** Statuses by kind of request (`valid`, `body: name too long`, ...), and by own values used. */
  kinds: Record<string, Record<number, number>>;
  failures: Failure[];
  shrinkRequests: number;
}

const signatureOf = (op: Operation, req: FuzzRequest, status: number, v: Violation[]) =>
  `${op.id} | ${req.kind} | ${status} | ${v
    .map((x) => x.cls)
    .sort()
    .join(' + ')}`;

const seedFor = (op: Operation) => {
  let h = SEED | 0;
  for (const c of op.id) h = Math.imul(h ^ c.charCodeAt(0), 16_777_619);
  return h;
};

async function fuzz(op: Operation): Promise<OperationResult> {
  const t = await makeApp({ ALLOW_SIGNUP: 'true' });
  try {
    const pool = accounts(t);
    await pool.setUp();
    const send = sender(op, t, pool);
    const requests = requestsFor(op, t.config.bodyLimit);
    const seed = seedFor(op);
    const result: OperationResult = { id: op.id, requests: 0, conforming: 0, statuses: {}, kinds: {}, failures: [], shrinkRequests: 0 };
    const bySignature = new Map<string, Failure>();

    let run = 0;
    await fc.check(
      fc.asyncProperty(requests, async (req) => {
        const index = run++;
        const { res, line } = await send(req);
        result.requests += 1;
        result.statuses[res.status] = (result.statuses[res.status] ?? 0) + 1;
        const tally = (result.kinds[`${req.kind}${req.known ? ' (own values)' : ''}`] ??= {});
        tally[res.status] = (tally[res.status] ?? 0) + 1;
        const v = check(op, req, res);
        if (v.length === 0) {
          result.conforming += 1;
          return true;
        }
        const signature = signatureOf(op, req, res.status, v);
        const f = bySignature.get(signature);
        if (f) {
          f.count += 1;
          f.tokens.add(req.token);
        } else {
          bySignature.set(signature, {
            signature,
            kind: req.kind,
            status: res.status,
            classes: v.map((x) => x.cls),
            count: 1,
            tokens: new Set([req.token]),
            firstRun: index,
            example: line,
            detail: v.map((x) => x.detail).join('; '),
          });
        }
        return true; // go on: every failure is collected, then each is shrunk below
      }),
      { seed, numRuns: RUNS },
    );

    // Shrink one example of each failure: replay the run where it was first seen and let
    // fast-check look for a smaller request that fails the same way.
    const started = Date.now();
    for (const f of [...bySignature.values()].slice(0, SHRINK_MAX)) {
      const left = Math.min(SHRINK_BUDGET_MS - (Date.now() - started), SHRINK_TOTAL_MS - shrinkSpent);
      if (left <= 200) break;
      const shrinkStarted = Date.now();
      let last: { line: string; detail: string } | undefined;
      const details = await fc.check(
        fc.asyncProperty(requests, async (req) => {
          const { res, line } = await send(req);
          result.shrinkRequests += 1;
          const v = check(op, req, res);
          if (v.length > 0 && signatureOf(op, req, res.status, v) === f.signature) {
            last = { line, detail: v.map((x) => x.detail).join('; ') };
            return false;
          }
          return true;
        }),
        { seed, path: String(f.firstRun), numRuns: 1, plugins: [fc.interruptAfterTimeLimit(Math.min(SHRINK_ONE_MS, left))] },
      );
      shrinkSpent += Date.now() - shrinkStarted;
      if (details.failed && last) {
        f.example = last.line;
        f.detail = last.detail;
        f.shrunk = true;
      }
    }
    result.failures = [...bySignature.values()];
    return result;
  } finally {
    await t.close();
  }
}

const results: OperationResult[] = [];
const startedAt = Date.now();

afterAll(() => {
  const requests = results.reduce((n, r) => n + r.requests, 0);
  const conforming = results.reduce((n, r) => n + r.conforming, 0);
  const summary = {
    seed: SEED,
    runs_per_operation: RUNS,
    operations: results.length,
    of_operations: contract.operations.length,
    requests,
    conforming,
    share_conforming: requests === 0 ? 'n/a' : `${((100 * conforming) / requests).toFixed(1)}%`,
    distinct_failures: results.reduce((n, r) => n + r.failures.length, 0),
    shrink_requests: results.reduce((n, r) => n + r.shrinkRequests, 0),
    seconds: Number(((Date.now() - startedAt) / 1000).toFixed(1)),
    statuses: Object.fromEntries(results.map((r) => [r.id, r.statuses])),
  };
  if (VERBOSE) for (const r of results) process.stdout.write(`[contract-fuzz:${r.id}] ${JSON.stringify(r.kinds)}\n`);
  process.stdout.write(`[contract-fuzz] ${JSON.stringify(summary)}\n`);
});

describe('the contract, fuzzed from its own schemas', () => {
  test.each(contract.operations.map((op) => [op.id, op] as const))(
    'when requests generated from the schemas of %s are sent with every kind of token, then every answer is one the contract declares',
    async (_id, op) => {
      const r = await fuzz(op);
      results.push(r);
      const lines = r.failures.map(
        (f) =>
          `- ${op.method.toUpperCase()} ${op.path} (${op.id}), request "${f.kind}" -> ${f.status}: ${f.classes.join(' + ')}\n` +
          `    ${f.count} of ${r.requests} requests, tokens: ${[...f.tokens].join(', ')}\n` +
          `    ${f.shrunk ? 'shrunk example' : 'example (not shrunk)'}: ${f.example}\n` +
          `    ${f.detail}`,
      );
      if (lines.length > 0) {
        throw new Error(
          `${r.requests - r.conforming} of ${r.requests} answers of ${op.id} break the contract (CONTRACT_FUZZ_SEED=${SEED}, CONTRACT_FUZZ_RUNS=${RUNS}):\n${lines.join('\n')}`,
        );
      }
      expect(r.conforming).toBe(r.requests);
    },
    60_000,
  );
});
