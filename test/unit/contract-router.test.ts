import fs from 'node:fs';
import Koa from 'koa';
import request from 'supertest';
import YAML from 'yaml';
import { createApp } from '../../src/app';
import { fixedClock } from '../../src/clock';
import { loadConfig } from '../../src/config';
import { type Contract, CONTRACT_FILE, loadContract, parseContract } from '../../src/http/contract';
import { checkHandlers, checkSecurity, contractRouter } from '../../src/http/contract-router';
import type { AuthUses, Handlers } from '../../src/http/handler-types';
import { AUTH_USE } from '../../src/http/handlers';
import { problemResponses } from '../../src/http/problem';
import { createLogger } from '../../src/http/request-log';
import { requireToken } from '../../src/http/require-token';
import { createAjv } from '../../src/http/validation';
import { createRevocationList } from '../../src/services/revocations';
import { createTokens } from '../../src/services/tokens';
import type { Store } from '../../src/store/store';
import { TEST_SECRET, testPasswords } from '../support/make-app';

describe('the router is built from the contract', () => {
  const contract = loadContract();
  const handlerNames = Object.fromEntries(contract.operations.map((op) => [op.id, () => undefined]));

  test('when every operation has a handler and nothing else, then it passes', () => {
    expect(() => checkHandlers(contract, handlerNames)).not.toThrow();
  });

  test('when an operation has no handler, then start-up stops naming it', () => {
    const { getUser: _dropped, ...rest } = handlerNames;
    expect(() => checkHandlers(contract, rest)).toThrow('operation "getUser" in openapi.yaml has no handler');
  });

  test('when a handler has no operation, then start-up stops naming it', () => {
    expect(() => checkHandlers(contract, { ...handlerNames, deleteEverything: () => undefined })).toThrow(
      'handler "deleteEverything" has no operation in openapi.yaml',
    );
  });

  test('when the contract gains an operation the code does not handle, then createApp refuses to build', async () => {
    const grown = loadContract();
    grown.operations.push({ ...grown.operations[0]!, id: 'exportEverything' as never, path: '/export', routerPath: '/export' });
    const build = async () =>
      createApp({
        config: loadConfig({ NODE_ENV: 'test', JWT_SECRET: TEST_SECRET }),
        store: {} as Store,
        passwords: await testPasswords(),
        logger: createLogger('silent'),
        contract: grown,
      });
    await expect(build()).rejects.toThrow('operation "exportEverything" in openapi.yaml has no handler');
  });

  test('when the contract says security: [], then the operation is public; otherwise bearerAuth applies', () => {
    const publicIds = contract.operations
      .filter((op) => op.public)
      .map((op) => op.id)
      .sort();
    expect(publicIds).toEqual(['getJwks', 'getServerMetadata', 'health', 'login', 'ready', 'refresh', 'serverInfo', 'signup']);
  });
});

/** A contract of one operation, `GET /me` (operationId `whoAmI`), under the given security. */
function tinyContract(
  security: { top?: unknown; op?: unknown },
  schemes: Record<string, unknown> = { bearerAuth: { type: 'http', scheme: 'bearer' } },
): Contract {
  const op: Record<string, unknown> = { operationId: 'whoAmI', responses: { '200': { description: 'The caller.' } } };
  if (security.op !== undefined) op['security'] = security.op;
  return parseContract(
    YAML.stringify({
      openapi: '3.1.0',
      info: { title: 'tiny', version: '1' },
      ...(security.top === undefined ? {} : { security: security.top }),
      paths: { '/me': { get: op } },
      components: { securitySchemes: schemes },
    }),
  );
}

/** The real contract with the document's top-level `security` taken out. */
function contractWithoutTopLevelSecurity(): Contract {
  const document = YAML.parse(fs.readFileSync(CONTRACT_FILE, 'utf8')) as Record<string, unknown>;
  delete document['security'];
  return parseContract(YAML.stringify(document));
}

describe("start-up holds the contract's security to what the handlers read", () => {
  const build = async (contract: Contract) =>
    createApp({
      config: loadConfig({ NODE_ENV: 'test', JWT_SECRET: TEST_SECRET }),
      store: {} as Store,
      passwords: await testPasswords(),
      logger: createLogger('silent'),
      contract,
    });

  test('when the shipped contract is checked against the handlers, then it passes', () => {
    expect(() => checkSecurity(loadContract(), AUTH_USE)).not.toThrow();
  });

  test("when the top-level security is removed, then createApp refuses to build, naming getUser and every operation that reads the caller's claims", async () => {
    const stripped = contractWithoutTopLevelSecurity();
    await expect(build(stripped)).rejects.toThrow(
      /operation "getUser" \(GET \/user\): its handler reads the caller's claims, but openapi\.yaml makes it public/,
    );
    const error = await build(stripped).then(
      () => undefined,
      (e: Error) => e,
    );
    const named = [...String(error?.message).matchAll(/operation "(\w+)"/g)].map((m) => m[1]).sort();
    expect(named).toEqual(
      Object.entries(AUTH_USE)
        .filter(([, use]) => use === 'required')
        .map(([id]) => id)
        .sort(),
    );
  });

  test.each<[string, { security: { top?: unknown; op?: unknown }; use: string; want: RegExp | null }]>([
    [
      'when the operation says security: [] and its handler needs the claims, then start-up stops',
      {
        security: { top: [{ bearerAuth: [] }], op: [] },
        use: 'required',
        want: /"whoAmI" \(GET \/me\): its handler reads the caller's claims, but openapi\.yaml makes it public/,
      },
    ],
    [
      'when there is no security anywhere and the handler needs the claims, then start-up stops',
      { security: {}, use: 'required', want: /"whoAmI".*makes it public/ },
    ],
    [
      'when security is only the empty requirement [{}] and the handler needs the claims, then start-up stops',
      { security: { op: [{}] }, use: 'required', want: /"whoAmI".*makes it public/ },
    ],
    [
      'when security is optional and the handler needs the claims, then start-up stops',
      { security: { op: [{}, { bearerAuth: [] }] }, use: 'required', want: /"whoAmI".*makes the token optional/ },
    ],
    [
      'when the operation says security: [] and its handler reads claims when sent, then start-up stops',
      { security: { op: [] }, use: 'optional', want: /"whoAmI".*reads the caller's claims when a token is sent/ },
    ],
    [
      'when security is optional and the handler reads claims when sent, then it passes',
      { security: { op: [{}, { bearerAuth: [] }] }, use: 'optional', want: null },
    ],
    [
      'when security is required and the handler reads claims when sent, then it passes',
      { security: { top: [{ bearerAuth: [] }] }, use: 'optional', want: null },
    ],
    ['when security is required and the handler reads no claims, then it passes', { security: { top: [{ bearerAuth: [] }] }, use: 'none', want: null }],
    ['when the operation says security: [] and its handler reads no claims, then it passes', { security: { op: [] }, use: 'none', want: null }],
  ])('%s', (_name, { security, use, want }) => {
    const check = () => checkSecurity(tinyContract(security), { whoAmI: use });
    if (want === null) expect(check).not.toThrow();
    else expect(check).toThrow(want);
  });

  test('when an operation names a scheme the server does not check, then start-up stops naming it', () => {
    const contract = tinyContract(
      { op: [{ apiKey: [] }, { bearerAuth: [] }] },
      { bearerAuth: { type: 'http', scheme: 'bearer' }, apiKey: { type: 'apiKey', in: 'header', name: 'X-Key' } },
    );
    expect(() => checkSecurity(contract, { whoAmI: 'required' })).toThrow(
      'operation "whoAmI" (GET /me) names security scheme "apiKey", which is not HTTP bearer',
    );
    expect(() => checkSecurity(tinyContract({ op: [{ cookieAuth: [] }] }), { whoAmI: 'required' })).toThrow(
      'names security scheme "cookieAuth", which components.securitySchemes does not declare',
    );
  });
});

describe('security: [{}, {bearerAuth: []}] is optional authentication', () => {
  const SECRET = 'unit-test-secret-that-is-at-least-32-bytes';
  const clock = fixedClock();
  const tokens = createTokens({ secret: SECRET, issuer: 'iss', audience: 'aud', accessTokenTtl: 900, clockSkew: 30 }, clock);
  const revocations = createRevocationList({ store: {} as Partial<Store> as Store, clock, retainMs: 930_000 });
  const seen: unknown[] = [];

  function app(use: AuthUses[keyof AuthUses] = 'optional') {
    const contract = tinyContract({ top: [{ bearerAuth: [] }], op: [{}, { bearerAuth: [] }] });
    const handlers = {
      whoAmI: ({ auth }: { auth: { sub: string } | undefined }) => {
        seen.push(auth);
        return { status: 200, body: { sub: auth?.sub ?? null } };
      },
    } as unknown as Handlers;
    const router = contractRouter({
      contract,
      handlers,
      authUse: { whoAmI: use } as unknown as AuthUses,
      ajv: createAjv(contract),
      requireToken: requireToken({ tokens, revocations }),
      bodyLimit: 1024,
    });
    const koa = new Koa();
    koa.use(problemResponses({ logger: createLogger('silent') }));
    koa.use(router.routes());
    return request(koa.callback());
  }
  const sign = () => tokens.signAccess({ id: 'u1', name: 'alice', role: 'user' }, 's1', clock.now() + 86_400_000).token;

  beforeEach(() => {
    seen.length = 0;
  });

  test('when the request has no token, then it reaches the handler with no claims', async () => {
    const res = await app().get('/me');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ sub: null });
    expect(seen).toEqual([undefined]);
  });

  test('when the request has a valid token, then the handler gets its claims', async () => {
    const res = await app().get('/me').set('Authorization', `Bearer ${sign()}`);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ sub: 'u1' });
  });

  test.each([
    ['a forged token', () => `Bearer ${sign().slice(0, -2)}xx`],
    [
      'a token signed with another key',
      () =>
        `Bearer ${createTokens({ secret: `${SECRET}-other`, issuer: 'iss', audience: 'aud', accessTokenTtl: 900, clockSkew: 30 }, clock).signAccess({ id: 'u1', name: 'alice', role: 'admin' }, 's1', clock.now() + 86_400_000).token}`,
    ],
    ['another scheme', () => 'Basic YWxpY2U6c2VjcmV0'],
  ])('when the request has %s, then it gets 401 and never reaches the handler', async (_name, header) => {
    const res = await app().get('/me').set('Authorization', header());
    expect(res.status).toBe(401);
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(res.body).toMatchObject({ status: 401, code: 'invalid_token' });
    expect(res.headers['www-authenticate']).toMatch(/^Bearer /);
    expect(seen).toEqual([]);
  });
});
