import { expectProblem, operations } from '../support/expect-problem';
import { makeApp, type TestApp } from '../support/make-app';

/** Each path of the contract with the methods it declares (GET brings HEAD), as `Allow` must list them. */
const paths = [...new Set(operations.map((o) => o.path))].map((path) => {
  const declared = operations.filter((o) => o.path === path).map((o) => o.method.toUpperCase());
  const allow = declared.includes('GET') ? [...declared, 'HEAD'] : declared;
  return [path.replace('{id}', 'abc'), allow.join(', '), allow] as const;
});

const allowOf = (header: unknown) => String(header).split(/,\s*/).sort();

describe('OPTIONS', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await makeApp();
  });
  afterAll(() => t.close());

  test.each(paths)('when OPTIONS %s is asked for, without a token, then 204 with Allow: %s and no body', async (path, _listed, allow) => {
    const res = await t.http().options(path);
    expect(res.status).toBe(204);
    expect(allowOf(res.headers['allow'])).toEqual([...allow].sort());
    expect(res.text).toBe('');
    expect(res.headers['content-type']).toBeUndefined();
    expect(res.headers['content-length']).toBeUndefined();
  });

  test('when OPTIONS /user is asked for with a token, then the answer is the same 204', async () => {
    const u = await t.makeUser();
    const { access } = await t.login(u.name, u.password);
    const res = await t.http().options('/user').set('Authorization', `Bearer ${access}`);
    expect(res.status).toBe(204);
    expect(allowOf(res.headers['allow'])).toEqual(['GET', 'HEAD']);
  });

  test('when OPTIONS is asked of the contract document, then 204 with Allow: GET, HEAD', async () => {
    const res = await t.http().options('/openapi.json');
    expect(res.status).toBe(204);
    expect(allowOf(res.headers['allow'])).toEqual(['GET', 'HEAD']);
  });

  test.each(['/nope', '/sessions/abc/extra', '/user/passwords'])(
    'when OPTIONS %s (an unknown path) is asked for, then 404 not_found problem+json',
    async (path) => {
      const res = await t.http().options(path);
      expectProblem(res, 404, 'not_found');
      expect(res.headers['allow']).toBeUndefined();
    },
  );
});

describe('OPTIONS with CORS_ORIGINS set', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await makeApp({ CORS_ORIGINS: 'https://app.example' });
  });
  afterAll(() => t.close());

  const preflight = (origin: string) =>
    t.http().options('/user').set('Origin', origin).set('Access-Control-Request-Method', 'GET').set('Access-Control-Request-Headers', 'authorization');

  test("when an allowed origin's preflight comes, then @koa/cors answers it, 204 with the CORS headers", async () => {
    const res = await preflight('https://app.example');
    expect(res.status).toBe(204);
    expect(res.headers['access-control-allow-origin']).toBe('https://app.example');
    expect(String(res.headers['access-control-allow-methods']).split(',')).toContain('GET');
    expect(res.text).toBe('');
  });

  test("when another origin's preflight comes, then it gets the plain 204 with Allow and no CORS headers", async () => {
    const res = await preflight('https://evil.example');
    expect(res.status).toBe(204);
    expect(allowOf(res.headers['allow'])).toEqual(['GET', 'HEAD']);
    expect(res.headers['access-control-allow-origin']).toBeUndefined();
    expect(res.headers['access-control-allow-methods']).toBeUndefined();
  });
});
