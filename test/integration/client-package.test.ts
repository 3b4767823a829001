import { execFile } from 'node:child_process';
import { generateKeyPairSync, sign } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import type { AddressInfo } from 'node:net';
import jwt from 'jsonwebtoken';
import Koa from 'koa';
import { type RunningServer, startServer, tempDir } from '../support/server-process';

/**
 * The typed client as a consumer gets it: `npm pack`, installed into a project of its own,
 * the README's snippet compiled there under `tsc --strict` and run against the built server.
 */
const run = promisify(execFile);
const ROOT = path.join(__dirname, '..', '..');
const TSC = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
const README_URL = 'http://127.0.0.1:3000';
const ADMIN_PASSWORD = 'a-test-admin-passphrase-of-some-length';

/** The first ```ts block of the README's "Typed client" section. */
function readmeSnippet(): string {
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const section = readme.split(/^### Typed client$/m)[1];
  const block = section ? /```ts\n([\s\S]*?)```/.exec(section) : null;
  if (!block?.[1]) throw new Error('README.md has no ```ts block under "### Typed client"');
  return block[1];
}

/** The ```js block of the README's "Verifying tokens in your own services" section. */
function readmeVerifierSnippet(): string {
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const section = readme.split(/^### Verifying tokens in your own services$/m)[1]?.split(/^#{2,3} /m)[0];
  const block = section ? /```js\n([\s\S]*?)```/.exec(section) : null;
  if (!block?.[1]) throw new Error('README.md has no ```js block under "### Verifying tokens in your own services"');
  return block[1];
}

/** The npm that runs this test, or the one on PATH. */
function npm(args: string[], cwd: string) {
  const cli = process.env['npm_execpath'];
  return cli && /npm-cli\.js$/.test(cli) ? run(process.execPath, [cli, ...args], { cwd, timeout: 60_000 }) : run('npm', args, { cwd, timeout: 60_000 });
}

test("when the type test compiles the README snippet, then it is the README's word for word", () => {
  const check = fs.readFileSync(path.join(ROOT, 'test', 'types', 'readme-client.check.mts'), 'utf8');
  const between = /\/\/ README snippet: begin\n([\s\S]*?)\/\/ README snippet: end\n/.exec(check);
  expect(between?.[1]).toBe(readmeSnippet());
});

describe('the package, packed and installed into another project', () => {
  let work: string;
  let tarball: string;
  let packed: string[];
  let server: RunningServer | undefined;

  beforeAll(async () => {
    // Packed with --ignore-scripts: `prepare` would rebuild dist/ while other test files run
    // the server from it. npm test builds just before jest; say so when that was skipped.
    const built = path.join(ROOT, 'dist', 'client.d.ts');
    if (!fs.existsSync(built) || fs.statSync(built).mtimeMs < fs.statSync(path.join(ROOT, 'src', 'client.ts')).mtimeMs) {
      throw new Error('dist/client.d.ts is missing or older than src/client.ts: run `npm run build` first (npm test does)');
    }
    const verifier = path.join(ROOT, 'dist', 'verifier.js');
    if (!fs.existsSync(verifier) || fs.statSync(verifier).mtimeMs < fs.statSync(path.join(ROOT, 'src', 'verifier.ts')).mtimeMs) {
      throw new Error('dist/verifier.js is missing or older than src/verifier.ts: run `npm run build` first (npm test does)');
    }
    work = tempDir('client-package-');
    const { stdout } = await npm(['pack', '--ignore-scripts', '--json', '--pack-destination', work], ROOT);
    const [info] = JSON.parse(stdout) as { filename: string; files: { path: string }[] }[];
    tarball = path.join(work, info!.filename);
    packed = info!.files.map((f) => f.path).sort();
  }, 60_000);

  let consumer: Promise<string> | undefined;
  /** A project of its own with the packed tarball installed, made once for the tests that use it. */
  const installed = () =>
    (consumer ??= (async () => {
      const project = path.join(work, 'consumer');
      fs.mkdirSync(project);
      const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
        name: string;
        version: string;
        dependencies: Record<string, string>;
        bin: Record<string, string>;
      };
      const spec = `file:${path.relative(project, tarball)}`;
      // An ES module project, so the snippet may await at top level, as the README's does.
      fs.writeFileSync(
        path.join(project, 'package.json'),
        JSON.stringify({ name: 'consumer', private: true, type: 'module', dependencies: { [pkg.name]: spec } }),
      );
      // Offline: after `npm ci` the npm cache holds the tarballs of our dependencies but not the
      // registry's documents npm resolves versions with, so `npm install --offline <tarball>`
      // cannot resolve them. The consumer gets a lockfile instead: the tarball, and our
      // production tree as package-lock.json pins it (--ignore-scripts: no native builds).
      const lock = JSON.parse(fs.readFileSync(path.join(ROOT, 'package-lock.json'), 'utf8')) as {
        packages: Record<string, { dev?: boolean; devOptional?: boolean }>;
      };
      const packages: Record<string, unknown> = {
        '': { name: 'consumer', dependencies: { [pkg.name]: spec } },
        // With its bin, as npm writes it: npm ci links the bins the lockfile names.
        [`node_modules/${pkg.name}`]: { version: pkg.version, resolved: spec, dependencies: pkg.dependencies, bin: pkg.bin },
      };
      for (const [where, entry] of Object.entries(lock.packages)) {
        if (where.startsWith('node_modules/') && !entry.dev && !entry.devOptional) packages[where] = entry;
      }
      fs.writeFileSync(path.join(project, 'package-lock.json'), JSON.stringify({ name: 'consumer', lockfileVersion: 3, requires: true, packages }));
      await npm(['ci', '--offline', '--ignore-scripts', '--no-audit', '--no-fund'], project);
      return project;
    })());

  afterAll(async () => {
    await server?.stop();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  test('when packed, then the tarball holds the built client and verifier, their declarations, the generated types, the users CLI and the licence, and nothing of the HTTP server', () => {
    // The CLI (the package's bin) and what it loads: its folder, services, store and a few modules.
    const cli = ['cli', 'services', 'store'].flatMap((dir) =>
      fs
        .readdirSync(path.join(ROOT, 'dist', dir))
        .filter((f) => f.endsWith('.js'))
        .map((f) => `dist/${dir}/${f}`),
    );
    expect(cli).toEqual(expect.arrayContaining(['dist/cli/users.js', 'dist/services/users.js', 'dist/store/open-store.js']));
    expect(packed).toEqual(
      [
        'LICENSE',
        'README.md',
        'dist/client.d.ts',
        'dist/client.js',
        'dist/generated/openapi.d.ts',
        'dist/verifier.d.ts',
        'dist/verifier.js',
        'package.json',
        'dist/bootstrap.js',
        'dist/clock.js',
        'dist/config.js',
        'dist/errors.js',
        ...cli,
      ].sort(),
    );
  });

  test('when installed, then the README snippet compiles under tsc --strict and logs in and asks who it is', async () => {
    const project = await installed();
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { name: string };

    server = await startServer({ NODE_ENV: 'test', JWT_SECRET: 'a-test-secret-that-is-at-least-32-bytes!', DATABASE_URL: 'sqlite::memory:', ADMIN_PASSWORD });
    // The snippet as the README has it, given the admin's password and the server's address.
    const snippet = readmeSnippet();
    expect(snippet).toContain(README_URL);
    fs.writeFileSync(
      path.join(project, 'snippet.ts'),
      `const password = ${JSON.stringify(ADMIN_PASSWORD)};\n${snippet.replace(README_URL, server.url)}console.log(JSON.stringify(me.data));\n`,
    );
    // The declarations are real: with `any` (the TS7016 this once was) these would not fail.
    fs.writeFileSync(
      path.join(project, 'typed.ts'),
      [
        `import { createClient } from '${pkg.name}';`,
        `const api = createClient({ baseUrl: '${README_URL}' });`,
        '// @ts-expect-error: the contract has no GET /users/me',
        "await api.GET('/users/me');",
        '// @ts-expect-error: the login body needs a password',
        "await api.POST('/login', { body: { name: 'admin' } });",
        '',
      ].join('\n'),
    );
    fs.writeFileSync(
      path.join(project, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: { strict: true, target: 'ES2022', module: 'nodenext', moduleResolution: 'nodenext', lib: ['ES2022', 'DOM'], types: [] },
        files: ['snippet.ts', 'typed.ts'],
      }),
    );
    await run(process.execPath, [TSC, '-p', project, '--pretty', 'false'], { cwd: project, timeout: 30_000 }).catch((error: Error & { stdout?: string }) => {
      throw new Error(`the README snippet does not compile in a consumer project:\n${error.stdout ?? String(error)}`);
    });

    const { stdout } = await run(process.execPath, ['snippet.js'], { cwd: project, timeout: 15_000 });
    const me = JSON.parse(stdout.trim().split('\n').pop() as string) as Record<string, unknown>;
    expect(me).toEqual({ id: expect.any(String), name: 'admin', role: 'admin' });

    // The bin is linked and every module it loads was packed (its requires run before --help is read).
    const help = await run(path.join(project, 'node_modules', '.bin', 'koa-jwt-auth-users'), ['--help'], { cwd: project, timeout: 15_000 });
    expect(help.stdout).toMatch(/^Usage: npm run users -- <command>/);
  }, 90_000);

  test('when installed, then the README verifier snippet requires koa-jwt-auth-server/verifier from the package and accepts ES256 and EdDSA tokens from a JWKS', async () => {
    const project = await installed();
    // A JWKS as the auth server publishes it, on 127.0.0.1, and tokens of its keys.
    const ec = { kid: 'ec-1', ...generateKeyPairSync('ec', { namedCurve: 'P-256' }) };
    const ed = { kid: 'ed-1', ...generateKeyPairSync('ed25519') };
    const jwksApp = new Koa();
    jwksApp.use((ctx) => {
      ctx.body = {
        keys: [
          { ...ec.publicKey.export({ format: 'jwk' }), kid: ec.kid, alg: 'ES256', use: 'sig' },
          { ...ed.publicKey.export({ format: 'jwk' }), kid: ed.kid, alg: 'EdDSA', use: 'sig' },
        ],
      };
    });
    const jwksServer = jwksApp.listen(0, '127.0.0.1');
    await new Promise<void>((resolve) => jwksServer.once('listening', resolve));
    try {
      const jwksUri = `http://127.0.0.1:${(jwksServer.address() as AddressInfo).port}/.well-known/jwks.json`;
      // The README's issuer and audience: the server's defaults.
      const iat = Math.floor(Date.now() / 1000);
      const claims = { sub: 'u1', name: 'alice', iss: 'koa-jwt-auth-server', aud: 'koa-jwt-auth-server', iat, exp: iat + 300 };
      const es256 = jwt.sign(claims, ec.privateKey, { algorithm: 'ES256', keyid: ec.kid });
      const input = `${Buffer.from(JSON.stringify({ alg: 'EdDSA', kid: ed.kid })).toString('base64url')}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
      const eddsa = `${input}.${sign(null, Buffer.from(input), ed.privateKey).toString('base64url')}`;
      const hs256 = jwt.sign(claims, 'a-shared-secret-of-some-length-here', { algorithm: 'HS256', keyid: ec.kid });

      const snippet = readmeVerifierSnippet();
      const readmeJwks = 'https://auth.example.com/.well-known/jwks.json';
      expect(snippet).toContain(readmeJwks);
      expect(snippet).toContain('app.listen(3001);');
      // The snippet word for word, but for the JWKS address and a free port; then it asks itself.
      const drive = [
        `console.log(require.resolve('koa-jwt-auth-server/verifier'));`,
        "const server = app.listen(0, '127.0.0.1', async () => {",
        '  const url = `http://127.0.0.1:${server.address().port}/`;',
        '  const answers = [];',
        '  for (const token of JSON.parse(process.env.TOKENS)) {',
        '    const res = await fetch(url, { headers: token ? { authorization: `Bearer ${token}` } : {} });',
        "    answers.push({ status: res.status, type: res.headers.get('content-type'), body: await res.json() });",
        '  }',
        '  console.log(JSON.stringify(answers));',
        '  server.close();',
        '  server.closeAllConnections();',
        '});',
        '',
      ].join('\n');
      // .cjs: the consumer project is an ES module one, and the snippet uses require.
      fs.writeFileSync(path.join(project, 'verifier.cjs'), snippet.replace(readmeJwks, jwksUri).replace('app.listen(3001);\n', drive));
      const { stdout } = await run(process.execPath, ['verifier.cjs'], {
        cwd: project,
        timeout: 15_000,
        env: { ...process.env, TOKENS: JSON.stringify([es256, eddsa, hs256, '']) },
      });
      const [resolved, answers] = stdout.trim().split('\n') as [string, string];
      expect(fs.realpathSync(resolved)).toBe(fs.realpathSync(path.join(project, 'node_modules', 'koa-jwt-auth-server', 'dist', 'verifier.js')));
      expect(JSON.parse(answers)).toEqual([
        { status: 200, type: 'application/json; charset=utf-8', body: { hello: 'alice' } },
        { status: 200, type: 'application/json; charset=utf-8', body: { hello: 'alice' } },
        { status: 401, type: 'application/problem+json', body: expect.objectContaining({ status: 401, code: 'invalid_token' }) },
        { status: 401, type: 'application/problem+json', body: expect.objectContaining({ status: 401, code: 'missing_token' }) },
      ]);
    } finally {
      await new Promise<void>((resolve) => {
        jwksServer.close(() => resolve());
        jwksServer.closeAllConnections();
      });
    }
  }, 90_000);
});
