import { createPublicKey, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import jwt from 'jsonwebtoken';
import { type Browser, chromium } from 'playwright-core';
import { type RunningServer, SERVER_JS, startServer, tempDir } from '../support/server-process';

// The login page against a server that signs with ES256: the pages need no change, and the token
// they hold verifies with the key the server publishes.

/** CHROME_PATH, else the first `chromium` on PATH (Debian's package puts one there). */
function findChromium(): string {
  if (process.env.CHROME_PATH) return process.env.CHROME_PATH;
  for (const dir of (process.env.PATH ?? '').split(path.delimiter).filter(Boolean)) {
    const candidate = path.join(dir, 'chromium');
    if (fs.existsSync(candidate)) return candidate;
  }
  return 'chromium';
}
const CHROME_PATH = findChromium();
const MISSING_CHROMIUM = `Chromium was not found at ${CHROME_PATH}. Install it with \`apt-get install -y chromium\`, or set CHROME_PATH.`;
const haveChromium = fs.existsSync(CHROME_PATH);
const inCi = process.env.CI === 'true';
if (!haveChromium && !inCi) console.warn(`Skipping the ES256 browser test: ${MISSING_CHROMIUM}`);
const describeBrowser = haveChromium || inCi ? describe : describe.skip;

const ADMIN_PASSWORD = `admin-${randomBytes(18).toString('base64url')}`;

describeBrowser('browser: login with ES256 keys', () => {
  let server: RunningServer | undefined;
  let browser: Browser | undefined;
  let dataDir = '';

  beforeAll(async () => {
    if (!haveChromium) throw new Error(MISSING_CHROMIUM);
    if (!fs.existsSync(SERVER_JS)) throw new Error(`${SERVER_JS} is missing: run \`npm run build\` first (npm test does).`);
    dataDir = tempDir('auth-e2e-es256-');
    server = await startServer({
      NODE_ENV: 'development',
      DATA_DIR: dataDir,
      DATABASE_URL: `sqlite:${path.join(dataDir, 'auth.db')}`,
      ADMIN_NAME: 'admin',
      ADMIN_PASSWORD,
      LOG_LEVEL: 'warn',
      JWT_SECRET: randomBytes(36).toString('base64url'),
      JWT_ALGORITHM: 'ES256',
    });
    browser = await chromium.launch({ executablePath: CHROME_PATH, args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run'] });
  }, 40_000);

  afterAll(async () => {
    await browser?.close();
    await server?.stop();
    if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
  }, 20_000);

  test('when a person logs in on the page, then home shows them, and the ES256 token verifies with the published key of its kid', async () => {
    const base = (server as RunningServer).url;
    const context = await (browser as Browser).newContext({ baseURL: base });
    // The login answer is read on its way to the page (the page navigates away right after it).
    let loginStatus = 0;
    let access = '';
    await context.route('**/login', async (route) => {
      if (route.request().method() !== 'POST') return route.fallback();
      const response = await route.fetch();
      loginStatus = response.status();
      access = ((await response.json()) as { access_token?: string }).access_token ?? '';
      return route.fulfill({ response });
    });
    const page = await context.newPage();
    await page.goto('/login');
    await page.fill('#name', 'admin');
    await page.fill('#password', ADMIN_PASSWORD);
    await page.click('#login-form button[type="submit"]');
    await page.waitForURL(`${base}/`);
    expect(loginStatus).toBe(200);
    await page.locator('#logged-in').waitFor({ state: 'visible' });
    expect(((await page.locator('#user-name').textContent()) ?? '').trim()).toBe('admin');

    const header = jwt.decode(access, { complete: true })?.header;
    expect(header?.alg).toBe('ES256');
    const jwks = (await (await fetch(`${base}/.well-known/jwks.json`)).json()) as { keys: { kid: string }[] };
    const jwk = jwks.keys.find((k) => k.kid === header?.kid);
    expect(jwk).toBeDefined();
    const key = createPublicKey({ key: jwk as unknown as import('node:crypto').JsonWebKey, format: 'jwk' });
    expect(jwt.verify(access, key, { algorithms: ['ES256'] })).toMatchObject({ name: 'admin', role: 'admin' });
    await context.close();
  }, 60_000);
});
