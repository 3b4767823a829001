import type { Response } from 'supertest';
import { expectContract } from '../support/contract-check';
import { expectProblem, operations } from '../support/expect-problem';
import { makeApp, type TestApp } from '../support/make-app';

type Method = 'GET' | 'POST' | 'PUT' | 'DELETE' | 'PATCH' | 'TRACE';

interface Given {
  method: Method;
  path: string;
  /** Send the test user's access token. */
  auth?: boolean;
  /** The Content-Type header; none when unset. */
  type?: string;
  /** Sent as is: a string is the raw body. */
  body?: string;
}

interface Want {
  status: number;
  code: string;
  /** Every field the problem must name in `errors[].pointer`, exactly. */
  pointers?: string[];
  /** The methods the Allow header must list, in any order. */
  allow?: string[];
}

type Case = [string, { given: Given; want: Want }];

const JSON_TYPE = 'application/json';
const LIMIT = 16 * 1024; // BODY_LIMIT's default, which these tests run with

/** A JSON object of exactly `bytes` bytes: `fields` with `pad` filled up with 'x'. */
function sized(fields: Record<string, unknown>, pad: string, bytes: number): string {
  const base = JSON.stringify({ ...fields, [pad]: '' });
  const text = JSON.stringify({ ...fields, [pad]: 'x'.repeat(bytes - Buffer.byteLength(base)) });
  if (Buffer.byteLength(text) !== bytes) throw new Error('sized() miscounted');
  return text;
}

/** The cases every operation that takes a JSON body shares: the body is not an object, too big, or not JSON at all. */
function bodyShapeCases(method: Method, path: string, auth: boolean, valid: Record<string, unknown>, pad: string, concrete = path): Case[] {
  const op = `${method} ${path}`;
  const given = (type: string | undefined, body: string | undefined): Given => ({ method, path: concrete, auth, type, body });
  return [
    [
      `when ${op} gets malformed JSON, then 400 malformed_json naming /body`,
      { given: given(JSON_TYPE, '{"name": "a",'), want: { status: 400, code: 'malformed_json', pointers: ['/body'] } },
    ],
    [
      `when ${op} gets a JSON array, then 400 invalid_request naming /body`,
      { given: given(JSON_TYPE, '[]'), want: { status: 400, code: 'invalid_request', pointers: ['/body'] } },
    ],
    [
      `when ${op} gets a JSON string, then 400 malformed_json naming /body`,
      { given: given(JSON_TYPE, '"name"'), want: { status: 400, code: 'malformed_json', pointers: ['/body'] } },
    ],
    [
      `when ${op} gets a JSON number, then 400 malformed_json naming /body`,
      { given: given(JSON_TYPE, '42'), want: { status: 400, code: 'malformed_json', pointers: ['/body'] } },
    ],
    [
      `when ${op} gets JSON null, then 400 malformed_json naming /body`,
      { given: given(JSON_TYPE, 'null'), want: { status: 400, code: 'malformed_json', pointers: ['/body'] } },
    ],
    [
      `when ${op} gets a body of BODY_LIMIT+1 bytes, then 413 payload_too_large naming /body`,
      { given: given(JSON_TYPE, sized(valid, pad, LIMIT + 1)), want: { status: 413, code: 'payload_too_large', pointers: ['/body'] } },
    ],
    [
      `when ${op} gets text/plain, then 415 naming the content type`,
      { given: given('text/plain', JSON.stringify(valid)), want: { status: 415, code: 'unsupported_media_type', pointers: ['/headers/content-type'] } },
    ],
    [
      `when ${op} gets a urlencoded form, then 415 naming the content type`,
      {
        given: given('application/x-www-form-urlencoded', 'name=a&password=b'),
        want: { status: 415, code: 'unsupported_media_type', pointers: ['/headers/content-type'] },
      },
    ],
    [
      `when ${op} gets a multipart form, then 415 naming the content type`,
      {
        given: given('multipart/form-data; boundary=b', '--b\r\nContent-Disposition: form-data; name="name"\r\n\r\na\r\n--b--\r\n'),
        want: { status: 415, code: 'unsupported_media_type', pointers: ['/headers/content-type'] },
      },
    ],
    [
      `when ${op} gets no body and no content type, then 415 naming the content type`,
      { given: given(undefined, undefined), want: { status: 415, code: 'unsupported_media_type', pointers: ['/headers/content-type'] } },
    ],
    // The body is required: the parser reads nothing as {}, which must not pass for one.
    [
      `when ${op} gets an empty JSON body, then 400 invalid_request naming /body`,
      { given: given(JSON_TYPE, ''), want: { status: 400, code: 'invalid_request', pointers: ['/body'] } },
    ],
    // RFC 8259 §8.1: JSON is UTF-8; another charset is refused, not misread as UTF-8.
    [
      `when ${op} gets charset=utf-16, then 415 naming the content type`,
      {
        given: given(`${JSON_TYPE}; charset=utf-16`, JSON.stringify(valid)),
        want: { status: 415, code: 'unsupported_media_type', pointers: ['/headers/content-type'] },
      },
    ],
    [
      `when ${op} gets an unknown charset, then 415 naming the content type`,
      {
        given: given(`${JSON_TYPE}; charset=bogus`, JSON.stringify(valid)),
        want: { status: 415, code: 'unsupported_media_type', pointers: ['/headers/content-type'] },
      },
    ],
  ];
}

/** Cases whose JSON object breaks the operation's schema, naming `pointers`. */
function schemaCases(method: Method, path: string, auth: boolean, rows: [string, unknown, string[]][], concrete = path): Case[] {
  return rows.map(([what, body, pointers]) => [
    `when ${method} ${path} gets ${what}, then 400 invalid_request naming ${pointers.join(' and ')}`,
    { given: { method, path: concrete, auth, type: JSON_TYPE, body: JSON.stringify(body) }, want: { status: 400, code: 'invalid_request', pointers } },
  ]);
}

const long = (n: number) => 'a'.repeat(n);
const login = { name: 'somebody', password: 'a-password' };
const signup = { name: 'newcomer', password: 'a-long-enough-password' };
const change = { current_password: 'the-old-one', new_password: 'a-long-enough-password' };

const bodyCases: Case[] = [
  ...bodyShapeCases('POST', '/login', false, login, 'password'),
  ...schemaCases('POST', '/login', false, [
    ['an empty object', {}, ['/body/name', '/body/password']],
    ['no password', { name: 'a' }, ['/body/password']],
    ['a number for the name', { ...login, name: 42 }, ['/body/name']],
    ['an object for the password', { ...login, password: { $ne: '' } }, ['/body/password']],
    ['an extra field', { ...login, role: 'admin' }, ['/body/role']],
    ['an empty name', { ...login, name: '' }, ['/body/name']],
    ['a name of 65 characters', { ...login, name: long(65) }, ['/body/name']],
    ['a password of 1025 characters', { ...login, password: long(1025) }, ['/body/password']],
  ]),
  // Exactly at the limit the body is read; it then breaks the schema (the password is too long).
  [
    'when POST /login gets a body of exactly BODY_LIMIT bytes, then it is read and 400 names /body/password',
    {
      given: { method: 'POST', path: '/login', type: JSON_TYPE, body: sized({ name: 'a' }, 'password', LIMIT) },
      want: { status: 400, code: 'invalid_request', pointers: ['/body/password'] },
    },
  ],

  ...bodyShapeCases('POST', '/users', false, signup, 'password'),
  ...schemaCases('POST', '/users', false, [
    ['an empty object', {}, ['/body/name', '/body/password']],
    ['no name', { password: signup.password }, ['/body/name']],
    ['a boolean for the password', { ...signup, password: true }, ['/body/password']],
    ['an array for the name', { ...signup, name: ['a'] }, ['/body/name']],
    ['an extra field', { ...signup, role: 'admin' }, ['/body/role']],
    ['a password of 7 characters', { ...signup, password: 'seven77' }, ['/body/password']],
    ['a password of 1025 characters', { ...signup, password: long(1025) }, ['/body/password']],
    ['a name of 65 characters', { ...signup, name: long(65) }, ['/body/name']],
  ]),

  ...bodyShapeCases('POST', '/refresh', false, { refresh_token: 'abc' }, 'refresh_token'),
  ...schemaCases('POST', '/refresh', false, [
    ['a number for the token', { refresh_token: 42 }, ['/body/refresh_token']],
    ['an empty token', { refresh_token: '' }, ['/body/refresh_token']],
    ['a token of 257 characters', { refresh_token: long(257) }, ['/body/refresh_token']],
    ['an extra field', { refresh_token: 'abc', access_token: 'abc' }, ['/body/access_token']],
  ]),

  ...bodyShapeCases('PUT', '/user/password', true, change, 'new_password'),
  ...schemaCases('PUT', '/user/password', true, [
    ['an empty object', {}, ['/body/current_password', '/body/new_password']],
    ['no new password', { current_password: change.current_password }, ['/body/new_password']],
    ['a number for the current password', { ...change, current_password: 1 }, ['/body/current_password']],
    ['null for the new password', { ...change, new_password: null }, ['/body/new_password']],
    ['an extra field', { ...change, user_id: 'someone-else' }, ['/body/user_id']],
    ['a new password of 7 characters', { ...change, new_password: 'seven77' }, ['/body/new_password']],
    ['a new password of 1025 characters', { ...change, new_password: long(1025) }, ['/body/new_password']],
    ['an empty current password', { ...change, current_password: '' }, ['/body/current_password']],
  ]),

  // The admin operations: the body is checked before the handler asks whether the caller is an admin.
  ...bodyShapeCases('PATCH', '/users/{id}', true, { role: 'user' }, 'role', '/users/abc'),
  ...schemaCases(
    'PATCH',
    '/users/{id}',
    true,
    [
      ['an empty object', {}, ['/body']],
      ['an unknown role', { role: 'root' }, ['/body/role']],
      ['a string for disabled', { disabled: 'yes' }, ['/body/disabled']],
      ['a name (not changeable here)', { name: 'renamed' }, ['/body/name']],
    ],
    '/users/abc',
  ),
  ...bodyShapeCases('PUT', '/users/{id}/password', true, { password: 'a-long-enough-password' }, 'password', '/users/abc/password'),
  ...schemaCases(
    'PUT',
    '/users/{id}/password',
    true,
    [
      ['an empty object', {}, ['/body/password']],
      ['a password of 7 characters', { password: 'seven77' }, ['/body/password']],
      ['an extra field', { password: 'a-long-enough-password', role: 'admin' }, ['/body/role']],
    ],
    '/users/abc/password',
  ),

  ...bodyShapeCases('POST', '/admin/users', true, { ...signup, role: 'user' }, 'password'),
  ...schemaCases('POST', '/admin/users', true, [
    ['an empty object', {}, ['/body/name', '/body/password']],
    ['a role that does not exist', { ...signup, role: 'root' }, ['/body/role']],
    ['a password of 7 characters', { ...signup, password: 'seven77' }, ['/body/password']],
    ['an extra field', { ...signup, disabled: true }, ['/body/disabled']],
  ]),
];

const paramCases: Case[] = [
  ['a space and a bang', encodeURIComponent('a b!')],
  ['65 characters', long(65)],
  ['a broken percent-encoding', '%E0%A4%A'],
  ['a non-ASCII letter', encodeURIComponent('é')],
  ['a dot', 'a.b'],
].flatMap(([what, id]) =>
  ['/sessions/', '/users/', '/users/:/sessions'].map((prefix): Case => {
    const path = prefix.includes(':') ? prefix.replace(':', id as string) : `${prefix}${id}`;
    const template = prefix.includes(':') ? prefix.replace(':', '{id}') : `${prefix}{id}`;
    return [
      `when DELETE ${template} gets an id with ${what}, then 400 invalid_request naming /params/id`,
      { given: { method: 'DELETE', path, auth: true }, want: { status: 400, code: 'invalid_request', pointers: ['/params/id'] } },
    ];
  }),
);

/** Query parameters are checked before the handler (so before the admin check of GET /audit and GET /users). */
const queryCases: Case[] = (
  [
    ['/audit?limit=0', ['/query/limit']],
    ['/audit?limit=201', ['/query/limit']],
    ['/audit?limit=0x10', ['/query/limit']],
    ['/audit?limit=1&limit=2', ['/query/limit']],
    ['/audit?event=nope&since=yesterday', ['/query/event', '/query/since']],
    ['/audit?cursor=a%20b', ['/query/cursor']],
    ['/user/activity?limit=-1', ['/query/limit']],
    ['/user/activity?cursor=' + long(129), ['/query/cursor']],
    ['/users?limit=101', ['/query/limit']],
    ['/users?q=' + long(65), ['/query/q']],
  ] as [string, string[]][]
).map(([path, pointers]) => [
  `when GET ${path.length > 60 ? `${path.slice(0, 60)}…` : path} is asked for, then 400 invalid_request naming ${pointers.join(' and ')}`,
  { given: { method: 'GET', path, auth: true }, want: { status: 400, code: 'invalid_request', pointers } },
]);

const unknownPathCases: Case[] = (
  [
    ['GET', '/nope'],
    ['POST', '/nope'],
    ['GET', '/user/passwords'],
    ['DELETE', '/sessions/abc/extra'],
    ['POST', '/login/extra'],
    ['GET', '/api/user'],
    ['PUT', `/${encodeURIComponent('☃')}`],
  ] as [Method, string][]
).map(([method, path]) => [`when ${method} ${path} is asked for, then 404 not_found`, { given: { method, path }, want: { status: 404, code: 'not_found' } }]);

/** Paths of the contract that are also pages of the site (public/login.html). */
const PAGES = new Set(['/login']);

/** Every path of the contract with every method it does not declare. */
const wrongMethodCases: Case[] = [...new Set(operations.map((o) => o.path))].flatMap((path) => {
  const declared = operations.filter((o) => o.path === path).map((o) => o.method.toUpperCase());
  const allow = declared.includes('GET') ? [...declared, 'HEAD'] : declared;
  const concrete = path.replace('{id}', 'abc');
  return (
    (['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'TRACE'] as Method[])
      // GET /login is the login page, not the API.
      .filter((m) => !declared.includes(m) && !(m === 'GET' && PAGES.has(path)))
      .map((method): Case => [
        `when ${method} ${concrete} is asked for, then 405 method_not_allowed with Allow: ${allow.join(', ')}`,
        { given: { method, path: concrete, type: JSON_TYPE, body: '{}' }, want: { status: 405, code: 'method_not_allowed', allow } },
      ])
  );
});

function isOperation(method: string, path: string): boolean {
  const p = path.split('?')[0] as string;
  return operations.some((o) => o.method === method.toLowerCase() && new RegExp(`^${o.path.replace(/\{[^}]+\}/g, '[^/]+')}$`).test(p));
}

describe('every request is checked against the contract', () => {
  let t: TestApp;
  let token: string;

  beforeAll(async () => {
    // Requests in this table are all refused before any handler runs, so they can share one app.
    t = await makeApp({ ALLOW_SIGNUP: 'true' });
    const u = await t.makeUser({ name: 'validator' });
    token = (await t.login(u.name, u.password)).access;
  });
  afterAll(() => t.close());

  async function send(given: Given): Promise<Response> {
    let req = t.http()[given.method.toLowerCase() as 'get'](given.path);
    if (given.auth) req = req.set('Authorization', `Bearer ${token}`);
    if (given.type !== undefined) req = req.set('Content-Type', given.type);
    if (given.body !== undefined) req = req.send(given.body);
    return req;
  }

  test('when the tables are built, then they cover every operation of the contract', () => {
    const covered = new Set<string>();
    for (const [, { given }] of [...bodyCases, ...paramCases, ...wrongMethodCases]) {
      for (const o of operations) {
        if (new RegExp(`^${o.path.replace(/\{[^}]+\}/g, '[^/]+')}$`).test(given.path)) covered.add(o.id);
      }
    }
    expect([...covered].sort()).toEqual(operations.map((o) => o.id).sort());
    // Every operation that takes a body has the body cases.
    const withBody = operations.filter((o) => o.body).map((o) => `${o.method.toUpperCase()} ${o.path}`);
    for (const op of withBody) expect(bodyCases.some(([name]) => name.startsWith(`when ${op} gets malformed JSON`))).toBe(true);
  });

  test.each([...bodyCases, ...paramCases, ...queryCases, ...unknownPathCases, ...wrongMethodCases])('%s', async (_name, { given, want }) => {
    const res = await send(given);
    if (isOperation(given.method, given.path)) expectContract(res, given.method, given.path);
    expectProblem(res, want.status, want.code);
    expect(res.text).not.toMatch(/\n\s+at /);
    if (want.pointers) {
      expect(res.body.errors.map((e: { pointer: string }) => e.pointer).sort()).toEqual([...want.pointers].sort());
      for (const e of res.body.errors) expect(e.message).toEqual(expect.any(String));
    }
    if (want.allow) {
      expect(String(res.headers['allow']).split(/,\s*/).sort()).toEqual([...want.allow].sort());
    } else {
      expect(res.headers['allow']).toBeUndefined();
    }
  });
});

describe('the same requests, put right, get through', () => {
  test('when each body operation gets a body that keeps the contract, then it answers its success status', async () => {
    const t: TestApp = await makeApp({ ALLOW_SIGNUP: 'true' });
    const u = await t.makeUser({ name: 'putright', password: 'the-old-one' });
    const pair = await t.login(u.name, u.password);
    const cases: [Method, string, string | undefined, unknown, number][] = [
      ['POST', '/users', undefined, signup, 201],
      ['POST', '/refresh', undefined, { refresh_token: pair.refresh }, 200],
      ['DELETE', '/sessions/abc', pair.access, undefined, 404],
      // Past validation, the admin operations' handlers refuse a user's token.
      ['PATCH', '/users/abc', pair.access, { disabled: true }, 403],
      ['PUT', '/users/abc/password', pair.access, { password: 'a-long-enough-password' }, 403],
      ['PUT', '/user/password', pair.access, change, 204],
    ];
    for (const [method, path, auth, body, status] of cases) {
      let req = t.http()[method.toLowerCase() as 'get'](path);
      if (auth) req = req.set('Authorization', `Bearer ${auth}`);
      if (body !== undefined) req = req.set('Content-Type', 'application/json; charset=utf-8').send(JSON.stringify(body));
      const res = await req;
      expectContract(res, method, path);
      expect([method, path, res.status]).toEqual([method, path, status]);
    }
    const res = await t
      .http()
      .post('/login')
      .set('Content-Type', JSON_TYPE)
      .send(sized({ name: 'putright' }, 'password', 40));
    expectContract(res, 'POST', '/login');
    expect(res.status).toBe(401); // read, valid, and simply the wrong password
    await t.close();
  });
});

describe('what the contract bounds, the server enforces', () => {
  test('when the refresh cookie is longer than its maxLength (256), then 400 invalid_request naming /cookies/refresh_token, not 401', async () => {
    const t = await makeApp();
    const res = expectContract(
      await t
        .http()
        .post('/refresh')
        .set('Cookie', `refresh_token=${long(300)}`)
        .send({}),
      'POST',
      '/refresh',
    );
    expectProblem(res, 400, 'invalid_request');
    expect(res.body.errors).toEqual([{ pointer: '/cookies/refresh_token', message: 'must NOT have more than 256 characters' }]);
    // At the limit it is read, and is simply unknown.
    const atLimit = expectContract(
      await t
        .http()
        .post('/refresh')
        .set('Cookie', `refresh_token=${long(256)}`)
        .send({}),
      'POST',
      '/refresh',
    );
    expectProblem(atLimit, 401, 'invalid_refresh_token');
    await t.close();
  });

  test('when the body is JSON with charset=UTF-8 (any case) or utf8, then it is read', async () => {
    const t = await makeApp();
    for (const type of [`${JSON_TYPE}; charset=UTF-8`, `${JSON_TYPE}; charset=utf8`, `${JSON_TYPE};charset="utf-8"`]) {
      const res = expectContract(await t.http().post('/login').set('Content-Type', type).send(JSON.stringify(login)), 'POST', '/login');
      expect([type, res.status, res.body.code]).toEqual([type, 401, 'invalid_credentials']);
    }
    await t.close();
  });

  test('when a body breaks the schema in a hundred places, then the problem names 20 of them (Problem.errors maxItems)', async () => {
    const t = await makeApp();
    const body = Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`extra${i}`, i]));
    const res = expectContract(await t.http().post('/login').send(body), 'POST', '/login');
    expectProblem(res, 400, 'invalid_request');
    expect(res.body.errors).toHaveLength(20);
    await t.close();
  });

  test('when an unknown property has a name longer than a pointer may be (256), then it is named at its parent', async () => {
    const t = await makeApp();
    const res = expectContract(
      await t
        .http()
        .post('/login')
        .send({ ...login, [long(1000)]: 1, 'a/b~c': 2 }),
      'POST',
      '/login',
    );
    expectProblem(res, 400, 'invalid_request');
    expect(res.body.errors).toEqual([
      { pointer: '/body', message: 'has a property that is not allowed (its name is too long to repeat)' },
      // RFC 6901 §3: "~" and "/" escaped.
      { pointer: '/body/a~1b~0c', message: 'is not allowed' },
    ]);
    await t.close();
  });
});
