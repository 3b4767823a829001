import fs from 'node:fs';
import path from 'node:path';
import { PUBLIC_DIR } from '../../src/app';
import { packageDir } from '../../src/http/static-files';
import { expectProblem } from '../support/expect-problem';
import { makeApp } from '../support/make-app';

/** What a browser sends. */
const EVERY_ENCODING = 'gzip, deflate, br';

/** Reads the body and drops it (supertest would not buffer a script). */
const discard = (r: NodeJS.ReadableStream, done: (err: Error | null, body: unknown) => void) => {
  r.resume();
  r.on('end', () => done(null, null));
};

/** The body as sent (after supertest undid the encoding), whatever the content type. */
const rawText = (res: { body: unknown; text?: string }) => (Buffer.isBuffer(res.body) ? res.body.toString('utf8') : (res.text ?? ''));

describe('compression: pages, scripts, styles and the docs bundle', () => {
  test.each([
    ['a page', '/login', 'gzip', path.join(PUBLIC_DIR, 'login.html')],
    ['a page script', '/js/api.js', 'br', path.join(PUBLIC_DIR, 'js', 'api.js')],
    ['a stylesheet', '/vendor/bootstrap/css/bootstrap.min.css', 'gzip', path.join(packageDir('bootstrap', 'dist'), 'css', 'bootstrap.min.css')],
    ['the docs bundle', '/docs/swagger-ui-bundle.js', 'br', path.join(packageDir('swagger-ui-dist'), 'swagger-ui-bundle.js')],
  ])('when %s (%s) is asked for with Accept-Encoding: %s, then it comes back in that encoding, and decodes to the file', async (_what, url, encoding, file) => {
    const t = await makeApp();
    const res = await t
      .http()
      .get(url)
      .set('Accept-Encoding', encoding)
      .buffer(true)
      .parse((r, done) => {
        const chunks: Buffer[] = [];
        r.on('data', (c: Buffer) => chunks.push(c));
        r.on('end', () => done(null, Buffer.concat(chunks)));
      });
    expect(res.status).toBe(200);
    expect(res.headers['content-encoding']).toBe(encoding);
    expect(res.headers['vary']).toMatch(/Accept-Encoding/i);
    expect(rawText(res)).toBe(fs.readFileSync(file, 'utf8'));
    await t.close();
  });

  test('when the client asks for br, gzip and deflate, then the docs bundle comes as br; without Accept-Encoding, as it is', async () => {
    const t = await makeApp();
    const br = await t
      .http()
      .get('/docs/swagger-ui-bundle.js')
      .set('Accept-Encoding', EVERY_ENCODING)
      .buffer(true)
      .parse(discard as never);
    expect(br.headers['content-encoding']).toBe('br');
    const plain = await t
      .http()
      .get('/docs/swagger-ui-bundle.js')
      .set('Accept-Encoding', 'identity')
      .buffer(true)
      .parse(discard as never);
    expect(plain.headers['content-encoding']).toBeUndefined();
    expect(Number(plain.headers['content-length'])).toBe(fs.statSync(path.join(packageDir('swagger-ui-dist'), 'swagger-ui-bundle.js')).size);
    await t.close();
  });

  test.each([
    ['a file under the 1 KiB threshold', '/js/theme.js'],
    ['a font (already compressed)', '/vendor/bootstrap-icons/fonts/bootstrap-icons.woff2'],
    ['an image', '/docs/favicon-32x32.png'],
  ])('when %s is asked for, then it is sent as it is', async (_what, url) => {
    const t = await makeApp();
    const res = await t.http().get(url).set('Accept-Encoding', EVERY_ENCODING);
    expect(res.status).toBe(200);
    // The small file must stay small, or this row tests the threshold no more.
    if (url === '/js/theme.js') expect(fs.statSync(path.join(PUBLIC_DIR, 'js', 'theme.js')).size).toBeLessThan(1024);
    expect(res.headers['content-encoding']).toBeUndefined();
    await t.close();
  });
});

describe('compression: never an API answer (BREACH)', () => {
  // These answers are under the 1 KiB threshold, so this test alone would pass with compression
  // mounted for everything; the next one, with answers well over it, would not (tried).
  test('when the client asks for compression, then POST /login, POST /refresh (body and cookie), GET /user and their refusals come back uncompressed', async () => {
    const t = await makeApp();
    const u = await t.makeUser();
    const login = await t.http().post('/login').set('Accept-Encoding', EVERY_ENCODING).send({ name: u.name, password: u.password });
    expect([login.status, login.headers['content-encoding']]).toEqual([200, undefined]);
    expect(login.body.access_token).toEqual(expect.any(String));

    const byBody = await t.http().post('/refresh').set('Accept-Encoding', EVERY_ENCODING).send({ refresh_token: login.body.refresh_token });
    expect([byBody.status, byBody.headers['content-encoding']]).toEqual([200, undefined]);
    const cookie = ([] as string[])
      .concat(byBody.headers['set-cookie'] ?? [])
      .find((c) => c.startsWith('refresh_token='))
      ?.split(';')[0] as string;
    const byCookie = await t.http().post('/refresh').set('Accept-Encoding', EVERY_ENCODING).set('Cookie', cookie).send({});
    expect([byCookie.status, byCookie.headers['content-encoding']]).toEqual([200, undefined]);

    const me = await t
      .http()
      .get('/user')
      .set('Accept-Encoding', EVERY_ENCODING)
      .set('Authorization', `Bearer ${byCookie.body.access_token as string}`);
    expect([me.status, me.headers['content-encoding']]).toEqual([200, undefined]);

    const refused = await t.http().post('/login').set('Accept-Encoding', EVERY_ENCODING).send({ name: u.name, password: 'not-the-password' });
    expectProblem(refused, 401, 'invalid_credentials');
    expect(refused.headers['content-encoding']).toBeUndefined();
    const noToken = await t.http().get('/user').set('Accept-Encoding', EVERY_ENCODING);
    expectProblem(noToken, 401);
    expect(noToken.headers['content-encoding']).toBeUndefined();
    await t.close();
  });

  test('when API answers are well over the threshold (sessions, the user list, the contract), or a missing file under a static folder is answered by the router, then still uncompressed', async () => {
    const t = await makeApp();
    const admin = await t.makeUser({ role: 'admin' });
    for (let i = 0; i < 30; i += 1) await t.makeUser({ name: `compression-user-${i}` });
    const { access } = await t.login(admin.name, admin.password);

    // A personal answer with text the client chose (User-Agent) beside it: BREACH's setting.
    for (let i = 0; i < 4; i += 1)
      await t
        .http()
        .post('/login')
        .set('User-Agent', `agent-${i}-${'u'.repeat(400)}`)
        .send({ name: admin.name, password: admin.password })
        .expect(200);
    const sessions = await t.http().get('/sessions').set('Accept-Encoding', EVERY_ENCODING).set('Authorization', `Bearer ${access}`);
    expect(sessions.status).toBe(200);
    expect(sessions.text.length).toBeGreaterThan(1600);
    expect(sessions.headers['content-encoding']).toBeUndefined();

    const users = await t.http().get('/users').set('Accept-Encoding', EVERY_ENCODING).set('Authorization', `Bearer ${access}`);
    expect(users.status).toBe(200);
    // Large enough that compression would have applied, had the rule let it.
    expect(users.text.length).toBeGreaterThan(2048);
    expect(users.headers['content-encoding']).toBeUndefined();

    const contract = await t.http().get('/openapi.json').set('Accept-Encoding', EVERY_ENCODING);
    expect(contract.status).toBe(200);
    expect(contract.text.length).toBeGreaterThan(10_000);
    expect(contract.headers['content-encoding']).toBeUndefined();

    // /js/ is a static folder; the file is not there, so the router's 404 problem answers.
    const missing = await t
      .http()
      .get(`/js/${'x'.repeat(2000)}.js`)
      .set('Accept-Encoding', EVERY_ENCODING);
    expectProblem(missing, 404, 'not_found');
    expect(missing.headers['content-encoding']).toBeUndefined();
    await t.close();
  });
});
