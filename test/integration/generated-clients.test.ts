import { execFile } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { makeApp } from '../support/make-app';
import { tempDir } from '../support/server-process';

/**
 * The clients people generate from openapi.yaml, generated afresh on every run (nothing is
 * committed): @hey-api/openapi-ts and orval's fetch client, both compiled under `tsc --strict`
 * (test/clients/tsconfig.json), and the first driven against the app. Offline: both generators
 * are devDependencies and read only the contract.
 */
const run = promisify(execFile);
const ROOT = path.join(__dirname, '..', '..');
const BIN = path.join(ROOT, 'node_modules', '.bin');
const CONTRACT = path.join(ROOT, 'openapi.yaml');

type Generator = 'hey-api' | 'orval';
const generators: Record<Generator, string[]> = {
  'hey-api': [path.join(BIN, 'openapi-ts'), '--input', CONTRACT, '--output', 'hey-api'],
  orval: [path.join(BIN, 'orval'), '--input', CONTRACT, '--output', 'orval/client.ts', '--client', 'fetch', '--mode', 'single'],
};

let dir: string;
/** Why each generator failed, with its output; absent when it succeeded. */
const generateFailures: Partial<Record<Generator, string>> = {};
/** tsc's diagnostics, one line each. */
let diagnostics: string[] = [];

function failureText(error: unknown): string {
  const e = error as { message?: string; stdout?: string; stderr?: string };
  return [e.message, e.stdout, e.stderr].filter(Boolean).join('\n');
}

beforeAll(async () => {
  dir = tempDir('generated-clients-');
  const env = { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' };
  await Promise.all(
    (Object.entries(generators) as [Generator, string[]][]).map(async ([name, [bin, ...args]]) => {
      try {
        await run(bin as string, args, { cwd: dir, env, timeout: 30_000 });
      } catch (error) {
        generateFailures[name] = failureText(error);
      }
    }),
  );
  fs.copyFileSync(path.join(ROOT, 'test', 'clients', 'drive-hey-api.ts'), path.join(dir, 'drive-hey-api.ts'));
  fs.writeFileSync(path.join(dir, 'tsconfig.json'), JSON.stringify({ extends: path.join(ROOT, 'test', 'clients', 'tsconfig.json') }));
  try {
    await run(process.execPath, [path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', dir, '--pretty', 'false'], { cwd: dir, timeout: 30_000 });
  } catch (error) {
    const e = error as { stdout?: string };
    diagnostics = (e.stdout ?? failureText(error)).split('\n').filter(Boolean);
  }
}, 60_000);

afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const labels: Record<Generator, string> = { 'hey-api': '@hey-api/openapi-ts', orval: 'orval (fetch)' };

describe.each(Object.keys(generators) as Generator[])('the %s client', (name) => {
  test(`when ${labels[name]} generates it, then it compiles under tsc --strict`, () => {
    expect(generateFailures[name]).toBeUndefined();
    const own = diagnostics.filter((line) => line.startsWith(`${name}/`) || line.startsWith(`drive-${name}`));
    expect(own).toEqual([]);
    // Nothing else failed either (a tsconfig problem would name no generator's file).
    expect(diagnostics.filter((line) => !/^(hey-api|orval|drive-)/.test(line))).toEqual([]);
  });
});

describe('the @hey-api/openapi-ts client', () => {
  test('when it logs in, asks who it is, refreshes and logs out against the app, then each step answers as the server should', async () => {
    expect(generateFailures['hey-api']).toBeUndefined();
    const t = await makeApp();
    const u = await t.makeUser({ name: 'hazel' });
    // eslint-disable-next-line @typescript-eslint/no-misused-promises -- Koa's handler ends in .catch(ctx.onerror): its promise never rejects
    const server = http.createServer(t.app.callback());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      // Emitted by tsc above from drive-hey-api.ts and the generated code (CommonJS). Not
      // imported by type: the main program would then compile the generated code too.
      // eslint-disable-next-line @typescript-eslint/no-require-imports -- a module built at test time, in a temporary folder
      const { drive } = require(path.join(dir, 'build', 'drive-hey-api.js')) as {
        drive: (baseUrl: string, name: string, password: string) => Promise<unknown>;
      };
      const result = await drive(`http://127.0.0.1:${port}`, 'hazel', u.password);
      expect(result).toEqual({
        loginStatus: 200,
        me: { id: u.id, name: 'hazel', role: 'user' },
        refreshStatus: 200,
        rotated: true,
        logoutStatus: 204,
        afterLogout: { status: 401, code: 'invalid_token' },
      });
    } finally {
      await new Promise((resolve) => server.close(resolve));
      await t.close();
    }
  });
});
