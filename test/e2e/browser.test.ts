import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { type Browser, type BrowserContext, chromium, type Page, type Response } from 'playwright-core';
import { CHROME_PATH, CHROMIUM_ARGS, describeBrowser, haveChromium, MISSING_CHROMIUM, RESULTS_DIR } from '../support/browser';
import { type RunningServer, SERVER_JS, startServer, tempDir } from '../support/server-process';

// The pages, driven by a real Chromium against the built server in its own process: the only
// way to see the CSP, the httpOnly cookie and the scripts' storage as a browser does.

const ADMIN_NAME = 'admin';
const ADMIN_PASSWORD = `admin-${randomBytes(18).toString('base64url')}`;
const JWT_LIKE = /eyJ[\w-]+\.[\w-]+\.[\w-]*/;

/** What one browser context did that a test must see: CSP reports, foreign hosts, tokens, dialogs. */
interface Watch {
  csp: string[];
  pageErrors: string[];
  foreignRequests: string[];
  dialogs: string[];
  /** Every access and refresh token the server handed this context. */
  tokens: Set<string>;
  /** Cookie refreshes and page logins whose JSON body still carried a refresh token (must stay 0). */
  refreshBodiesWithToken: number;
  pending: Promise<unknown>[];
}

interface Opened {
  context: BrowserContext;
  page: Page;
  watch: Watch;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describeBrowser('browser: pages and docs', () => {
  let server: RunningServer | undefined;
  let dataDir = '';
  let base = '';
  let browser: Browser | undefined;
  const contexts: BrowserContext[] = [];

  async function startE2eServer(): Promise<void> {
    if (!fs.existsSync(SERVER_JS)) throw new Error(`${SERVER_JS} is missing: run \`npm run build\` first (npm test does).`);
    dataDir = tempDir('auth-e2e-');
    // Its own cwd (startServer's temp folder), so a developer's .env cannot leak settings in.
    server = await startServer({
      NODE_ENV: 'development',
      DATA_DIR: dataDir,
      DATABASE_URL: `sqlite:${path.join(dataDir, 'auth.db')}`,
      ADMIN_NAME,
      ADMIN_PASSWORD,
      ALLOW_SIGNUP: 'true',
      LOG_LEVEL: 'warn',
      JWT_SECRET: randomBytes(36).toString('base64url'),
      // No grace for a refresh token used twice: the pages must never send one twice.
      REFRESH_REUSE_INTERVAL: '0',
    });
    base = server.url;
  }

  async function stopServer(): Promise<void> {
    await server?.stop();
  }

  beforeAll(async () => {
    if (!haveChromium) throw new Error(MISSING_CHROMIUM);
    await startE2eServer();
    browser = await chromium.launch({ executablePath: CHROME_PATH, args: CHROMIUM_ARGS });
  }, 40_000);

  afterAll(async () => {
    await Promise.allSettled(contexts.map((c) => c.close()));
    await browser?.close();
    await stopServer();
    if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
  }, 20_000);

  async function open(): Promise<Opened> {
    if (!browser) throw new Error('no browser');
    const context = await browser.newContext({ baseURL: base });
    contexts.push(context);
    const watch: Watch = { csp: [], pageErrors: [], foreignRequests: [], dialogs: [], tokens: new Set(), refreshBodiesWithToken: 0, pending: [] };
    context.on('request', (req) => {
      const url = new URL(req.url());
      if (url.protocol === 'data:' || url.protocol === 'blob:') return;
      if (url.hostname !== '127.0.0.1') watch.foreignRequests.push(req.url());
    });
    context.on('response', (res: Response) => {
      const { pathname } = new URL(res.url());
      if (res.status() !== 200 || (pathname !== '/login' && pathname !== '/refresh') || res.request().method() !== 'POST') return;
      // Best effort: a body read after the page navigated away may be gone; the cookie check
      // in expectNoTokenStored covers the refresh token either way.
      watch.pending.push(
        res
          .json()
          .then((body: { access_token?: string; refresh_token?: string }) => {
            if (body.access_token) watch.tokens.add(body.access_token);
            if (body.refresh_token) watch.tokens.add(body.refresh_token);
            // A cookie refresh, and a login by the pages (the cookie flow), keep the refresh token
            // out of what page scripts can read.
            if (body.refresh_token) watch.refreshBodiesWithToken += 1;
          })
          .catch(() => undefined),
      );
    });
    return { context, page: await newTab(context, watch), watch };
  }

  /** Another tab in the same context (same cookie jar, same origin), watched like the first. */
  async function newTab(context: BrowserContext, watch: Watch): Promise<Page> {
    const page = await context.newPage();
    page.on('console', (msg) => {
      if (/Content Security Policy/i.test(msg.text())) watch.csp.push(msg.text());
    });
    page.on('pageerror', (error) => watch.pageErrors.push(error.message));
    page.on('dialog', (dialog) => {
      watch.dialogs.push(dialog.message());
      dialog.dismiss().catch(() => undefined);
    });
    return page;
  }

  async function refreshCookie(context: BrowserContext) {
    // Path=/refresh: asking for the site root would not list it.
    return (await context.cookies(`${base}/refresh`)).find((c) => c.name === 'refresh_token');
  }

  /**
   * The page's storage holds no token: no key or value with a token this context was handed or
   * anything shaped like a JWT, and document.cookie never shows the refresh cookie.
   */
  async function expectNoTokenStored({ context, page, watch }: Opened, step: string): Promise<void> {
    await Promise.all(watch.pending);
    const cookie = await refreshCookie(context);
    if (cookie?.value) watch.tokens.add(cookie.value);
    const seen = await page.evaluate(() => {
      const entries = (s: Storage) => Object.keys(s).map((k) => [k, s.getItem(k) ?? ''] as [string, string]);
      return { local: entries(window.localStorage), session: entries(window.sessionStorage), cookie: document.cookie };
    });
    const stored = [...seen.local, ...seen.session].flat();
    const leaks = stored.filter((s) => JWT_LIKE.test(s) || [...watch.tokens].some((t) => s.includes(t)));
    expect({ step, leaks }).toEqual({ step, leaks: [] });
    expect({ step, cookie: seen.cookie.includes('refresh_token') }).toEqual({ step, cookie: false });
  }

  function expectCleanRun(watch: Watch): void {
    expect(watch.csp).toEqual([]);
    expect(watch.pageErrors).toEqual([]);
    expect(watch.foreignRequests).toEqual([]);
    expect(watch.dialogs).toEqual([]);
    expect(watch.refreshBodiesWithToken).toBe(0);
  }

  async function apiLogin(name: string, password: string): Promise<{ access_token: string; expires_in: number }> {
    const res = await fetch(`${base}/login`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ name, password }),
    });
    expect(res.status).toBe(200);
    return (await res.json()) as { access_token: string; expires_in: number };
  }

  const text = async (page: Page, selector: string) => ((await page.locator(selector).textContent()) ?? '').replace(/\s+/g, ' ').trim();

  test('when a person logs in, reloads and logs out, then the pages follow and no token reaches storage', async () => {
    const opened = await open();
    const { context, page, watch } = opened;

    await page.goto('/');
    await page.locator('#logged-out').waitFor({ state: 'visible' });
    expect(await text(page, '#logged-out')).toContain('You are not logged in');
    expect(await page.locator('#countdown').textContent()).toMatch(/^[1-3]$/);
    expect(await page.locator('#checking').isVisible()).toBe(false);
    await expectNoTokenStored(opened, 'home, logged out');
    await page.waitForURL(`${base}/login`, { timeout: 8_000 });
    await expectNoTokenStored(opened, 'login page');

    await page.fill('#name', ADMIN_NAME);
    await page.fill('#password', 'not-the-password');
    const [failed] = await Promise.all([
      page.waitForResponse((r) => new URL(r.url()).pathname === '/login' && r.request().method() === 'POST'),
      page.click('#login-form button[type="submit"]'),
    ]);
    expect(failed.status()).toBe(401);
    const problem = (await failed.json()) as { detail: string; code: string };
    expect(problem.code).toBe('invalid_credentials');
    await page.locator('#login-error').waitFor({ state: 'visible' });
    expect(await text(page, '#login-error')).toBe(problem.detail);
    expect(page.url()).toBe(`${base}/login`);
    await expectNoTokenStored(opened, 'login failed');

    await page.fill('#password', ADMIN_PASSWORD);
    await page.click('#login-form button[type="submit"]');
    await page.waitForURL(`${base}/`);
    await page.locator('#logged-in').waitFor({ state: 'visible' });
    expect(await text(page, '#user-name')).toBe(ADMIN_NAME);
    expect(await text(page, '#user-role')).toBe('admin');
    expect(await text(page, '#logged-in')).toContain(`Logged in as ${ADMIN_NAME}`);
    await expectNoTokenStored(opened, 'home, logged in');

    await page.reload();
    await page.locator('#logged-in').waitFor({ state: 'visible' });
    expect(await text(page, '#user-name')).toBe(ADMIN_NAME);
    await expectNoTokenStored(opened, 'home, reloaded');

    fs.mkdirSync(RESULTS_DIR, { recursive: true });
    const shot = path.join(RESULTS_DIR, 'home-logged-in.png');
    await page.screenshot({ path: shot });
    expect(fs.statSync(shot).size).toBeGreaterThan(1_000);

    const cookie = await refreshCookie(context);
    expect(cookie).toMatchObject({ httpOnly: true, sameSite: 'Strict', path: '/refresh' });
    const oldRefresh = cookie?.value as string;
    expect(oldRefresh.length).toBeGreaterThan(10);

    await page.click('#logout');
    await page.waitForURL(`${base}/login`);
    expect(await refreshCookie(context)).toBeUndefined();
    await expectNoTokenStored(opened, 'logged out');

    const replay = await fetch(`${base}/refresh`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Cookie: `refresh_token=${oldRefresh}` },
      body: '{}',
    });
    expect(replay.status).toBe(401);
    expect(replay.headers.get('content-type')).toMatch(/^application\/problem\+json/);

    expect(watch.tokens.size).toBeGreaterThan(0);
    expectCleanRun(watch);
  }, 60_000);

  test('when the access token nears its expiry, then the home page renews it silently', async () => {
    const opened = await open();
    const { context, page, watch } = opened;
    // The context's request client shares the browser's cookie jar: this sets the refresh cookie.
    const login = await context.request.post('/login', { data: { name: ADMIN_NAME, password: ADMIN_PASSWORD } });
    expect(login.status()).toBe(200);
    const { expires_in: expiresIn } = (await login.json()) as { expires_in: number };
    await page.clock.install();
    await page.goto('/');
    await page.locator('#logged-in').waitFor({ state: 'visible' });
    const before = (await refreshCookie(context))?.value;

    const renewed = page.waitForResponse((r) => new URL(r.url()).pathname === '/refresh', { timeout: 10_000 });
    await page.clock.fastForward(expiresIn * 1000);
    expect((await renewed).status()).toBe(200);
    let after = (await refreshCookie(context))?.value;
    for (let i = 0; i < 20 && after === before; i += 1) {
      await sleep(100);
      after = (await refreshCookie(context))?.value;
    }
    expect(after).toBeDefined();
    expect(after).not.toBe(before);
    expect(await page.locator('#logged-in').isVisible()).toBe(true);
    await expectNoTokenStored(opened, 'home, renewed');
    expectCleanRun(watch);
  }, 40_000);

  test('when two tabs of one session refresh at the same moment, then one POST /refresh serves both and the session lives on', async () => {
    const opened = await open();
    const { context, page, watch } = opened;
    const other = await newTab(context, watch);
    const tabs = [page, other];
    const login = await context.request.post('/login', { data: { name: ADMIN_NAME, password: ADMIN_PASSWORD } });
    expect(login.status()).toBe(200);

    /**
     * Loads the home page in both tabs at once. Every POST /refresh is held until both pages have
     * run their scripts and had time to send one: so the tabs' refreshes overlap for sure, as when
     * a browser restores two tabs, and any second request would be seen.
     */
    async function round(step: string, load: (tab: Page) => Promise<unknown>): Promise<void> {
      let sent = 0;
      let release = () => {};
      const gate = new Promise<void>((resolve) => (release = resolve));
      await context.route(`${base}/refresh`, async (route) => {
        if (route.request().method() === 'POST') {
          sent += 1;
          await gate;
        }
        await route.continue();
      });
      // GET /user as each tab sends it with the token it ended up with.
      const users: number[][] = tabs.map(() => []);
      const watchers = users.map((seen) => (res: Response) => {
        if (new URL(res.url()).pathname === '/user' && res.request().method() === 'GET') seen.push(res.status());
      });
      tabs.forEach((tab, i) => tab.on('response', watchers[i] as (res: Response) => void));
      try {
        await Promise.all(tabs.map(load));
        for (let i = 0; i < 50 && sent === 0; i += 1) await sleep(100);
        await sleep(500);
      } finally {
        release();
      }
      const shown = await Promise.all(
        tabs.map(async (tab) => {
          await tab.locator('#logged-in:not([hidden]), #logged-out:not([hidden]), #load-error:not([hidden])').waitFor({ timeout: 10_000 });
          return (await tab.locator('#logged-in').isVisible()) ? await text(tab, '#user-name') : 'not logged in';
        }),
      );
      tabs.forEach((tab, i) => tab.off('response', watchers[i] as (res: Response) => void));
      await context.unroute(`${base}/refresh`);
      expect({ step, sent, users, shown }).toEqual({ step, sent: 1, users: [[200], [200]], shown: [ADMIN_NAME, ADMIN_NAME] });
      expect(await refreshCookie(context)).toBeDefined();
    }

    await round('both tabs open', (tab) => tab.goto('/', { waitUntil: 'domcontentloaded' }));
    await round('both tabs reload', (tab) => tab.reload({ waitUntil: 'domcontentloaded' }));

    // The session is still alive: the cookie the tabs left behind renews once more.
    const later = await other.evaluate(async () => {
      const res = await fetch('/refresh', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}' });
      // Read to the end: the context's watcher waits for the body, which stays open while unread.
      await res.text();
      return res.status;
    });
    expect(later).toBe(200);
    await expectNoTokenStored({ context, page: other, watch }, 'two tabs, renewed');

    // A logout in one tab shows in the other.
    await page.click('#logout');
    await page.waitForURL(`${base}/login`);
    await other.locator('#logged-out').waitFor({ state: 'visible', timeout: 5_000 });
    expect(await refreshCookie(context)).toBeUndefined();
    await expectNoTokenStored(opened, 'two tabs, logged out');
    expectCleanRun(watch);
  }, 60_000);

  test('when sign-up is on, then /signup creates an account and lands home logged in', async () => {
    const opened = await open();
    const { page, watch } = opened;

    await page.goto('/login');
    await page.locator('#signup-link').waitFor({ state: 'visible' });
    await page.click('#signup-link');
    await page.waitForURL(`${base}/signup`);
    await page.locator('#signup-form').waitFor({ state: 'visible' });
    expect(await page.locator('#signup-closed').isVisible()).toBe(false);

    // Checked in the page, before any request.
    await page.fill('#name', 'carol');
    await page.fill('#password', 'carol-password-1');
    await page.fill('#confirm', 'carol-password-2');
    await page.click('#signup-form button[type="submit"]');
    await page.locator('#confirm.is-invalid').waitFor();
    expect(await text(page, '#confirm-feedback')).toBe('The passwords do not match.');

    // Told as it is typed, with no request: too short (in characters as the server counts them),
    // and the name as the password; fixed, the mark goes.
    let signupPosts = 0;
    page.on('request', (r) => {
      if (new URL(r.url()).pathname === '/users') signupPosts += 1;
    });
    await page.fill('#password', 'short😀');
    await page.locator('#confirm').focus();
    await page.locator('#password.is-invalid').waitFor();
    expect(await text(page, '#password-feedback')).toBe('Use at least 8 characters (6 so far).');
    await page.fill('#password', 'CAROL');
    await page.fill('#name', 'carol-anne');
    await page.fill('#password', 'Carol-Anne');
    await page.locator('#password.is-invalid').waitFor();
    expect(await text(page, '#password-feedback')).toBe('Do not use your name as the password.');
    await page.fill('#name', 'carol');
    await page.fill('#password', 'carol-password-1');
    await page.locator('#password.is-invalid').waitFor({ state: 'detached' });
    expect(signupPosts).toBe(0);

    // A common password only the server knows: its 422 is shown against the field.
    await page.fill('#password', 'Password123');
    await page.fill('#confirm', 'Password123');
    const [weak] = await Promise.all([
      page.waitForResponse((r) => new URL(r.url()).pathname === '/users' && r.request().method() === 'POST'),
      page.click('#signup-form button[type="submit"]'),
    ]);
    expect(weak.status()).toBe(422);
    await page.locator('#password.is-invalid').waitFor();
    expect(await text(page, '#password-feedback')).toBe('Password is one of the most common passwords.');
    expect(await text(page, '#signup-error')).toBe(((await weak.json()) as { detail: string }).detail);
    await page.fill('#password', 'carol-password-1');

    // Refused by the server: the name is taken (names are unique regardless of case).
    await page.fill('#name', 'ADMIN');
    await page.fill('#confirm', 'carol-password-1');
    const [taken] = await Promise.all([
      page.waitForResponse((r) => new URL(r.url()).pathname === '/users' && r.request().method() === 'POST'),
      page.click('#signup-form button[type="submit"]'),
    ]);
    expect(taken.status()).toBe(409);
    const problem = (await taken.json()) as { detail: string };
    await page.locator('#signup-error').waitFor({ state: 'visible' });
    expect(await text(page, '#signup-error')).toBe(problem.detail);
    expect(await page.locator('#name.is-invalid').count()).toBe(1);
    expect(await page.locator('#confirm.is-invalid').count()).toBe(0);
    await expectNoTokenStored(opened, 'signup refused');

    await page.fill('#name', 'carol');
    await page.click('#signup-form button[type="submit"]');
    await page.waitForURL(`${base}/`);
    await page.locator('#logged-in').waitFor({ state: 'visible' });
    expect(await text(page, '#user-name')).toBe('carol');
    expect(await text(page, '#user-role')).toBe('user');
    await expectNoTokenStored(opened, 'home after signup');
    expectCleanRun(watch);
  }, 40_000);

  test('when a token is pasted into the docs, then "Try it out" on GET /user answers 200 with the name', async () => {
    const opened = await open();
    const { page, watch } = opened;
    const { access_token: token } = await apiLogin(ADMIN_NAME, ADMIN_PASSWORD);

    await page.goto('/docs');
    expect(page.url()).toBe(`${base}/docs/`);
    const operation = page.locator('#operations-users-getUser');
    await operation.waitFor({ state: 'visible', timeout: 20_000 });
    expect(await text(page, '#operations-users-getUser .opblock-summary')).toContain('/user');
    expect(await text(page, '#operations-users-getUser .opblock-summary')).toContain('getUser');
    await expectNoTokenStored(opened, 'docs');

    await page.click('.scheme-container button.authorize');
    const dialog = page.locator('.dialog-ux .modal-ux');
    await dialog.waitFor({ state: 'visible' });
    await dialog.locator('input').fill(token);
    await dialog.locator('button.authorize').click();
    await dialog.locator('button.btn-done').click();
    await dialog.waitFor({ state: 'hidden' });
    // persistAuthorization is off: the pasted token must not land in storage.
    watch.tokens.add(token);
    await expectNoTokenStored(opened, 'docs, authorized');

    await operation.locator('.opblock-summary').first().click();
    await operation.locator('button.try-out__btn').click();
    const [answer] = await Promise.all([
      page.waitForResponse((r) => new URL(r.url()).pathname === '/user' && r.request().method() === 'GET'),
      operation.locator('button.execute').click(),
    ]);
    expect(answer.request().headers()['authorization']).toBe(`Bearer ${token}`);
    expect(answer.status()).toBe(200);
    expect(await answer.json()).toMatchObject({ name: ADMIN_NAME, role: 'admin' });
    const live = operation.locator('.live-responses-table .response');
    await live.waitFor({ state: 'visible' });
    expect(await text(page, '#operations-users-getUser .live-responses-table .response .response-col_status')).toBe('200');
    expect(await text(page, '#operations-users-getUser .live-responses-table .response .response-col_description')).toContain(`"name": "${ADMIN_NAME}"`);
    await expectNoTokenStored(opened, 'docs, executed');
    expectCleanRun(watch);
  }, 60_000);
});
