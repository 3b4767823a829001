import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { AxeBuilder } from '@axe-core/playwright';
import { type Browser, type BrowserContext, chromium, type Page, type Response } from 'playwright-core';
import { MAX_PASSWORD_BYTES, MIN_PASSWORD_CHARS } from '../../src/services/password-policy';
import { CHROME_PATH, CHROMIUM_ARGS, describeBrowser, haveChromium, MISSING_CHROMIUM, RESULTS_DIR } from '../support/browser';
import { type RunningServer, SERVER_JS, startServer, tempDir } from '../support/server-process';

// The pages as a person meets them, in a real Chromium against the built server: colour modes,
// the 404 page, what each form says and when, the account page's password change and sessions,
// and axe-core's accessibility rules on every page in light and dark mode.

const ROOT = path.join(__dirname, '..', '..');
const SHOTS_DIR = path.join(RESULTS_DIR, 'pages');
/** Copies for the README, written only when asked: `UPDATE_SCREENSHOTS=1 npx jest test/e2e/pages.test.ts`. */
const README_SHOTS_DIR = path.join(ROOT, 'docs', 'screenshots');
const README_SHOTS = new Set(['login-light', 'signup-dark', 'account-light', 'account-sessions-dark', 'account-activity-light', 'not-found-light']);
const VIEWPORT = { width: 1000, height: 700 };

/**
 * axe-core as the project pins it (a devDependency of its own), not the copy @axe-core/playwright
 * bundles. AxeBuilder runs it through page.evaluate (the DevTools protocol), which the pages' CSP
 * does not govern: no bypassCSP, so the pages are checked under the headers they really get.
 */
const AXE_SOURCE = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

/** Few tries per name, so one test can reach the limit; the address limit out of the way. */
const RATE_NAME = 3;
const ADMIN_PASSWORD = `admin-${randomBytes(18).toString('base64url')}`;

type Scheme = 'light' | 'dark';

interface Watch {
  csp: string[];
  pageErrors: string[];
}

let counter = 0;
const uniqueName = (prefix: string) => `${prefix}${Date.now().toString(36)}${(counter += 1)}`;
const text = async (page: Page, selector: string) => ((await page.locator(selector).textContent()) ?? '').replace(/\s+/g, ' ').trim();
/**
 * Imports one of the pages' modules in the page and applies `use` (JavaScript source) to it. As a
 * string: ts-jest would compile an import() inside an evaluated function to require().
 */
const pageImport = <T>(page: Page, module: string, use: string): Promise<T> => page.evaluate<T>(`import(${JSON.stringify(module)}).then(${use})`);
const isPath = (pathname: string, method: string) => (r: Response) => new URL(r.url()).pathname === pathname && r.request().method() === method;

describeBrowser('pages: colour modes, messages, account page, accessibility', () => {
  let server: RunningServer | undefined;
  let dataDir = '';
  let base = '';
  let browser: Browser | undefined;
  const contexts: BrowserContext[] = [];
  const watches = new Map<Page, Watch>();

  beforeAll(async () => {
    if (!haveChromium) throw new Error(MISSING_CHROMIUM);
    if (!fs.existsSync(SERVER_JS)) throw new Error(`${SERVER_JS} is missing: run \`npm run build\` first (npm test does).`);
    dataDir = tempDir('auth-pages-');
    server = await startServer({
      NODE_ENV: 'development',
      DATA_DIR: dataDir,
      DATABASE_URL: `sqlite:${path.join(dataDir, 'auth.db')}`,
      ADMIN_NAME: 'admin',
      ADMIN_PASSWORD,
      ALLOW_SIGNUP: 'true',
      LOG_LEVEL: 'warn',
      JWT_SECRET: randomBytes(36).toString('base64url'),
      LOGIN_RATE_NAME: String(RATE_NAME),
      LOGIN_RATE_IP: '100000',
      LOGIN_RATE_WINDOW: '900',
    });
    base = server.url;
    browser = await chromium.launch({ executablePath: CHROME_PATH, args: CHROMIUM_ARGS });
    fs.mkdirSync(SHOTS_DIR, { recursive: true });
  }, 40_000);

  afterAll(async () => {
    await Promise.allSettled(contexts.map((c) => c.close()));
    await browser?.close();
    await server?.stop();
    if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
  }, 20_000);

  afterEach(() => {
    // No page of any test broke the CSP or threw.
    for (const watch of watches.values()) expect(watch).toEqual({ csp: [], pageErrors: [] });
    watches.clear();
  });

  async function open(scheme: Scheme = 'light'): Promise<{ context: BrowserContext; page: Page }> {
    if (!browser) throw new Error('no browser');
    const context = await browser.newContext({ baseURL: base, colorScheme: scheme, viewport: VIEWPORT });
    contexts.push(context);
    const page = await context.newPage();
    const watch: Watch = { csp: [], pageErrors: [] };
    watches.set(page, watch);
    page.on('console', (msg) => {
      if (/Content Security Policy/i.test(msg.text())) watch.csp.push(msg.text());
    });
    page.on('pageerror', (error) => watch.pageErrors.push(error.message));
    return { context, page };
  }

  /** An account made through the API (sign-up is on), with a password of its own. */
  async function makeUser(prefix = 'user'): Promise<{ name: string; password: string }> {
    const user = { name: uniqueName(prefix), password: `pw-${randomBytes(12).toString('base64url')}` };
    const res = await fetch(`${base}/users`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(user) });
    expect(res.status).toBe(201);
    return user;
  }

  /** Logs the context in as the pages do (the refresh cookie lands in its jar) and opens the account page. */
  async function loggedIn(page: Page, context: BrowserContext, user: { name: string; password: string }): Promise<void> {
    const login = await context.request.post('/login', { data: { ...user, refresh_token_in: 'cookie' } });
    expect(login.status()).toBe(200);
    await page.goto('/');
    await page.locator('#logged-in').waitFor({ state: 'visible' });
    await page.locator('#sessions li').first().waitFor();
  }

  /** A session of `user` made elsewhere, by another client. */
  async function apiLogin(user: { name: string; password: string }, userAgent = 'curl/8.5.0') {
    const res = await fetch(`${base}/login`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'User-Agent': userAgent },
      body: JSON.stringify(user),
    });
    expect(res.status).toBe(200);
    return (await res.json()) as { access_token: string; refresh_token: string; expires_in: number };
  }

  /** A field marked invalid the way every form marks it, with `message` read out through aria-describedby. */
  async function expectFieldError(page: Page, inputId: string, message: string): Promise<void> {
    const input = page.locator(`#${inputId}`);
    await page.locator(`#${inputId}.is-invalid`).waitFor();
    expect(await input.getAttribute('aria-invalid')).toBe('true');
    expect((await input.getAttribute('aria-describedby'))?.split(' ')).toContain(`${inputId}-feedback`);
    expect(await text(page, `#${inputId}-feedback`)).toBe(message);
    expect(await page.locator(`#${inputId}-feedback`).isVisible()).toBe(true);
  }

  describe('colour modes', () => {
    test.each(['/login', '/signup', '/', '/no/such/page'])(
      'when %s opens under a dark preference, then data-bs-theme is dark before the body is parsed, and follows the preference live',
      async (url) => {
        const { page } = await open('dark');
        // Seen at the moment <body> enters the document, before anything of it can be painted.
        await page.addInitScript(() => {
          const seen: (string | null)[] = [];
          (window as unknown as { themeAtBody: (string | null)[] }).themeAtBody = seen;
          new MutationObserver((_records, observer) => {
            if (!document.body) return;
            seen.push(document.documentElement.getAttribute('data-bs-theme'));
            observer.disconnect();
          }).observe(document, { childList: true, subtree: true });
        });
        await page.goto(url);
        expect(await page.evaluate(() => (window as unknown as { themeAtBody: string[] }).themeAtBody)).toEqual(['dark']);
        const background = () => page.evaluate(() => getComputedStyle(document.body).backgroundColor);
        const dark = await background();

        await page.emulateMedia({ colorScheme: 'light' });
        await page.waitForFunction(() => document.documentElement.getAttribute('data-bs-theme') === 'light');
        const light = await background();
        // Bootstrap's own colours changed with it: body-tertiary is #2b3035 dark, #f8f9fa light.
        expect([dark, light]).toEqual(['rgb(43, 48, 53)', 'rgb(248, 249, 250)']);

        await page.emulateMedia({ colorScheme: 'dark' });
        await page.waitForFunction(() => document.documentElement.getAttribute('data-bs-theme') === 'dark');
      },
      30_000,
    );
  });

  describe('404', () => {
    test('when a browser follows a wrong link, then it gets the 404 page, styled, with its way back; fetch from the page still gets the problem', async () => {
      const { page } = await open();
      const res = await page.goto('/no/such/page?x=1');
      expect(res?.status()).toBe(404);
      expect(res?.headers()['content-type']).toBe('text/html; charset=utf-8');
      expect(await page.title()).toBe('Page not found · Auth server');
      expect(await text(page, 'h1')).toBe('Page not found');
      // Its stylesheet applied (Bootstrap's card), though the URL is two folders deep.
      expect(await page.locator('.card').evaluate((el) => getComputedStyle(el).borderRadius)).not.toBe('0px');
      const answer = await page.evaluate(async () => {
        const r = await fetch('/no/such/page', { headers: { Accept: 'application/json, application/problem+json' } });
        return { status: r.status, type: r.headers.get('content-type'), body: (await r.json()) as { code: string } };
      });
      expect(answer).toEqual({ status: 404, type: 'application/problem+json', body: expect.objectContaining({ code: 'not_found' }) });
      await page.click('a[href="/login"]');
      await page.waitForURL(`${base}/login`);
      await page.locator('#login-form').waitFor();
    });
  });

  describe('login page', () => {
    test('when the form is sent empty, then each field says what it needs, marked for screen readers, and nothing is sent', async () => {
      const { page } = await open();
      let posts = 0;
      page.on('request', (r) => {
        if (new URL(r.url()).pathname === '/login' && r.method() === 'POST') posts += 1;
      });
      await page.goto('/login');
      await page.click('#login-form button[type="submit"]');
      await expectFieldError(page, 'name', 'Enter your name.');
      await expectFieldError(page, 'password', 'Enter your password.');
      expect(await page.evaluate(() => document.activeElement?.id)).toBe('name');
      expect(posts).toBe(0);
    });

    test("when the password is wrong, then the server's message shows and the password is cleared; right, then the account page", async () => {
      const { page } = await open();
      const user = await makeUser('lena');
      await page.goto('/login');
      await page.fill('#name', user.name);
      await page.fill('#password', 'not-the-password');
      const [failed] = await Promise.all([page.waitForResponse(isPath('/login', 'POST')), page.click('#login-form button[type="submit"]')]);
      expect(failed.status()).toBe(401);
      await page.locator('#login-error').waitFor({ state: 'visible' });
      expect(await text(page, '#login-error')).toBe(((await failed.json()) as { detail: string }).detail);
      expect(await page.inputValue('#password')).toBe('');
      expect(await page.evaluate(() => document.activeElement?.id)).toBe('password');

      await page.fill('#password', user.password);
      await page.click('#login-form button[type="submit"]');
      await page.waitForURL(`${base}/`);
      await page.locator('#logged-in').waitFor({ state: 'visible' });
      expect(await text(page, '#user-name')).toBe(user.name);
      expect(await text(page, '#user-role')).toBe('user');
    });

    test('when the name has run out of tries, then the wait is told in minutes, from Retry-After', async () => {
      const { page } = await open();
      const user = await makeUser('mallory');
      await page.goto('/login');
      await page.fill('#name', user.name);
      let limited: Response | undefined;
      for (let i = 0; i <= RATE_NAME && !limited; i += 1) {
        await page.fill('#password', `wrong-${i}-password`);
        const [res] = await Promise.all([page.waitForResponse(isPath('/login', 'POST')), page.click('#login-form button[type="submit"]')]);
        if (res.status() === 429) limited = res;
        else expect(res.status()).toBe(401);
      }
      expect(limited?.status()).toBe(429);
      const retryAfter = Number(limited?.headers()['retry-after']);
      // The window is 15 minutes: the wait is most of it.
      expect(retryAfter).toBeGreaterThan(800);
      expect(retryAfter).toBeLessThanOrEqual(900);
      expect(((await limited?.json()) as { detail: string }).detail).toBe(`Too many attempts. Try again in ${retryAfter} seconds.`);
      await page.waitForFunction(() => /minutes/.test(document.getElementById('login-error')?.textContent ?? ''));
      expect(await text(page, '#login-error')).toBe(`Too many attempts. Try again in ${Math.ceil(retryAfter / 60)} minutes.`);
    });

    test('when a wait is put in words, then seconds only under a minute, then whole minutes rounded up', async () => {
      const { page } = await open();
      await page.goto('/login');
      const said = await pageImport<[number, string][]>(
        page,
        '/js/api.js',
        'm => [1, 2, 59, 60, 61, 119, 120, 895, 900, 3600].map((s) => [s, m.formatWait(s)])',
      );
      expect(said).toEqual([
        [1, '1 second'],
        [2, '2 seconds'],
        [59, '59 seconds'],
        [60, '1 minute'],
        [61, '2 minutes'],
        [119, '2 minutes'],
        [120, '2 minutes'],
        [895, '15 minutes'],
        [900, '15 minutes'],
        [3600, '60 minutes'],
      ]);
    });
  });

  describe('sign-up page', () => {
    test('when the server refuses a common password, then the field says so in a sentence; then the account is made and the account page opens', async () => {
      const { page } = await open();
      const name = uniqueName('sam');
      await page.goto('/signup');
      await page.fill('#name', name);
      await page.fill('#password', 'Password123');
      await page.fill('#confirm', 'Password123');
      const [weak] = await Promise.all([page.waitForResponse(isPath('/users', 'POST')), page.click('#signup-form button[type="submit"]')]);
      expect(weak.status()).toBe(422);
      // The server's "is one of the most common passwords", with the field's label as its subject.
      await expectFieldError(page, 'password', 'Password is one of the most common passwords.');

      await page.fill('#password', 'short');
      await page.locator('#confirm').focus();
      await expectFieldError(page, 'password', `Use at least ${MIN_PASSWORD_CHARS} characters (5 so far).`);
      const password = `pw-${randomBytes(12).toString('base64url')}`;
      await page.fill('#password', password);
      await page.fill('#confirm', password);
      await page.click('#signup-form button[type="submit"]');
      await page.waitForURL(`${base}/`);
      await page.locator('#logged-in').waitFor({ state: 'visible' });
      expect(await text(page, '#user-name')).toBe(name);
    });
  });

  describe('logging out and sessions ending', () => {
    test('when a person logs out, then the login page says so, once', async () => {
      const { page, context } = await open();
      await loggedIn(page, context, await makeUser('olga'));
      await page.click('#logout');
      await page.locator('#login-notice').waitFor({ state: 'visible' });
      expect(await text(page, '#login-notice')).toBe('You have been logged out.');
      expect(await page.locator('#login-notice').getAttribute('role')).toBe('status');
      // The reason is not left in the address: a reload does not say it again.
      expect(page.url()).toBe(`${base}/login`);
      await page.reload();
      await page.locator('#login-form').waitFor();
      expect(await page.locator('#login-notice').isVisible()).toBe(false);
    });

    test('when the session is ended elsewhere, then the next renewal says "Your session has ended", and so does the login page', async () => {
      const { page, context } = await open();
      const user = await makeUser('pia');
      const login = await context.request.post('/login', { data: { ...user, refresh_token_in: 'cookie' } });
      const { expires_in: expiresIn } = (await login.json()) as { expires_in: number };
      await page.clock.install();
      await page.goto('/');
      await page.locator('#logged-in').waitFor({ state: 'visible' });

      // From another device: find the browser's session and end it.
      const other = await apiLogin(user);
      const listed = (await (await fetch(`${base}/sessions`, { headers: { Authorization: `Bearer ${other.access_token}` } })).json()) as {
        id: string;
        current: boolean;
      }[];
      const browserSession = listed.find((s) => !s.current);
      expect(browserSession).toBeDefined();
      const ended = await fetch(`${base}/sessions/${browserSession?.id}`, { method: 'DELETE', headers: { Authorization: `Bearer ${other.access_token}` } });
      expect(ended.status).toBe(204);

      const renewal = page.waitForResponse(isPath('/refresh', 'POST'));
      await page.clock.fastForward(expiresIn * 1000);
      expect((await renewal).status()).toBe(401);
      await page.locator('#logged-out').waitFor({ state: 'visible' });
      expect(await text(page, '#logged-out-text')).toBe('Your session has ended.');
      await page.clock.fastForward(4_000);
      await page.locator('#login-notice').waitFor({ state: 'visible' });
      expect(await text(page, '#login-notice')).toBe('Your session has ended. Log in again to go on.');
    }, 40_000);
  });

  describe('account page', () => {
    test('when it opens, then it shows who you are, the password rule the server enforces, and the sessions with this one marked', async () => {
      const { page, context } = await open();
      const user = await makeUser('rita');
      await apiLogin(user, 'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15');
      await loggedIn(page, context, user);
      expect(await text(page, '#user-name')).toBe(user.name);
      expect(await page.inputValue('#account-name')).toBe(user.name);

      // The rule is on the page before anything is typed, and the page's numbers are the server's.
      expect(await page.locator('#new-password-help').isVisible()).toBe(true);
      expect(await text(page, '#new-password-help')).toContain(`At least ${MIN_PASSWORD_CHARS} characters`);
      expect(await page.getAttribute('#new-password', 'minlength')).toBe(String(MIN_PASSWORD_CHARS));
      const rule = await pageImport<number[]>(page, '/js/password-rule.js', 'm => [m.MIN_PASSWORD, m.MAX_PASSWORD_BYTES]');
      expect(rule).toEqual([MIN_PASSWORD_CHARS, MAX_PASSWORD_BYTES]);

      // GET /sessions, newest first: this browser, then the Safari session made before it.
      const items = page.locator('#sessions li[data-session-id]');
      expect(await items.count()).toBe(2);
      // Browser and system as the API read them from the user agent (its `browser` and `os`).
      expect(await text(page, '#sessions li.current-session .fw-semibold')).toMatch(/^Chrome [\d.]+ on Linux This session$/);
      expect(await text(page, '#sessions li.current-session .session-address')).toBe('From 127.0.0.1');
      expect(await page.locator('#sessions li.current-session .end-session').count()).toBe(0);
      const other = page.locator('#sessions li[data-session-id]:not(.current-session)');
      expect(await text(page, '#sessions li[data-session-id]:not(.current-session) .fw-semibold')).toMatch(/^Safari 17\.5 on macOS\b/);
      expect(await other.locator('time').first().getAttribute('datetime')).toMatch(/^\d{4}-\d\d-\d\dT/);
      expect(await other.locator('.end-session').getAttribute('aria-label')).toMatch(/^End session: Safari 17\.5 on macOS\b.*, last active /);
      expect(await page.locator('#end-others').isVisible()).toBe(true);

      // Recent activity (GET /user/activity), newest first: this browser's login, then the Safari one.
      await page.locator('#recent-activity').waitFor({ state: 'visible' });
      const events = page.locator('#activity li[data-event]');
      await events.first().waitFor();
      expect(await events.evaluateAll((items) => items.map((i) => (i as HTMLElement).dataset['event']))).toEqual([
        'login_succeeded',
        'login_succeeded',
        'signup',
      ]);
      expect(await text(page, '#activity li[data-event]:first-child .activity-event')).toBe('Logged in by you');
      expect(await text(page, '#activity li[data-event]:first-child .small')).toMatch(/^just now · from 127\.0\.0\.1 · Chrome [\d.]+ on Linux\b/);
      // One page holds them all: no "More".
      expect(await page.locator('#activity-more').isHidden()).toBe(true);
      // No admin link for a user.
      expect(await page.locator('#admin-link').isHidden()).toBe(true);
    });

    test('when the activity runs past a page, then "More" follows the Link header to the next page', async () => {
      const { page, context } = await open();
      const user = await makeUser('mo');
      for (let i = 0; i < 10; i += 1) await apiLogin(user);
      await loggedIn(page, context, user);
      await page.locator('#activity-more').waitFor({ state: 'visible' });
      expect(await page.locator('#activity li[data-event]').count()).toBe(10);
      const [next] = await Promise.all([page.waitForResponse(isPath('/user/activity', 'GET')), page.click('#activity-more')]);
      expect(new URL(next.url()).searchParams.get('cursor')).toBeTruthy();
      // 11 logins and the sign-up.
      await page.waitForFunction(() => document.querySelectorAll('#activity li[data-event]').length === 12);
      expect(await page.locator('#activity-more').isHidden()).toBe(true);
    });

    test('when "End all other sessions" is confirmed, then the others end (their tokens are refused) and this one goes on; cancelled, nothing ends', async () => {
      const { page, context } = await open();
      const user = await makeUser('olga');
      const first = await apiLogin(user);
      const second = await apiLogin(user, 'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0');
      await loggedIn(page, context, user);
      expect(await page.locator('#sessions li[data-session-id]').count()).toBe(3);

      const deletes: string[] = [];
      page.on('request', (r) => {
        if (r.method() === 'DELETE') deletes.push(new URL(r.url()).pathname);
      });
      await page.click('#end-others');
      await page.locator('#confirm-modal.show').waitFor();
      expect(await text(page, '#confirm-title')).toBe('End all other sessions?');
      expect(await text(page, '#confirm-body')).toBe('Your 2 other sessions will be logged out at once. This session stays.');
      await page.click('#confirm-modal .modal-footer [data-bs-dismiss="modal"]');
      await page.locator('#confirm-modal').waitFor({ state: 'hidden' });
      expect(deletes).toEqual([]);

      await page.click('#end-others');
      await page.locator('#confirm-modal.show').waitFor();
      const [ended] = await Promise.all([page.waitForResponse(isPath('/sessions', 'DELETE')), page.click('#confirm-ok')]);
      expect(ended.status()).toBe(200);
      expect(await ended.json()).toEqual({ sessions_ended: 2 });
      await page.locator('#sessions-notice').waitFor({ state: 'visible' });
      expect(await text(page, '#sessions-notice')).toBe('2 other sessions were ended.');
      await page.waitForFunction(() => document.querySelectorAll('#sessions li[data-session-id]').length === 1);
      expect(await page.locator('#end-others').isHidden()).toBe(true);
      for (const other of [first, second]) {
        expect((await fetch(`${base}/user`, { headers: { Authorization: `Bearer ${other.access_token}` } })).status).toBe(401);
      }
      expect(await page.locator('#logged-in').isVisible()).toBe(true);
      expect(deletes).toEqual(['/sessions']);
    });

    test('when an admin opens the account page, then it links to the admin console', async () => {
      const { page, context } = await open();
      await loggedIn(page, context, { name: 'admin', password: ADMIN_PASSWORD });
      await page.locator('#admin-link').waitFor({ state: 'visible' });
      expect(await page.getAttribute('#admin-link', 'href')).toBe('/admin');
    });

    test('when another session is ended from the list, then it is gone from the list and its refresh token stops working', async () => {
      const { page, context } = await open();
      const user = await makeUser('sven');
      const elsewhere = await apiLogin(user);
      await loggedIn(page, context, user);
      const other = page.locator('#sessions li[data-session-id]:not(.current-session)');
      expect(await other.count()).toBe(1);
      const id = await other.getAttribute('data-session-id');
      const [deleted] = await Promise.all([page.waitForResponse(isPath(`/sessions/${id}`, 'DELETE')), other.locator('.end-session').click()]);
      expect(deleted.status()).toBe(204);
      await page.locator('#sessions-notice').waitFor({ state: 'visible' });
      expect(await text(page, '#sessions-notice')).toBe('The session was ended: it is logged out.');
      expect(await page.locator('#sessions li[data-session-id]').count()).toBe(1);
      expect(await text(page, '#sessions li:not([data-session-id])')).toBe('This is your only session.');

      const refresh = await fetch(`${base}/refresh`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ refresh_token: elsewhere.refresh_token }),
      });
      expect(refresh.status).toBe(401);
      const me = await fetch(`${base}/user`, { headers: { Authorization: `Bearer ${elsewhere.access_token}` } });
      expect(me.status).toBe(401);
      // This session goes on.
      expect(await page.locator('#logged-in').isVisible()).toBe(true);
    });

    test('when the new password breaks the rule, then the field says why: before sending (too short, the current one) and after (common); a wrong current password is told on its field', async () => {
      const { page, context } = await open();
      const user = await makeUser('tomas');
      await loggedIn(page, context, user);
      let puts = 0;
      page.on('request', (r) => {
        if (new URL(r.url()).pathname === '/user/password') puts += 1;
      });
      await page.fill('#current-password', user.password);
      await page.fill('#new-password', 'short');
      await page.fill('#confirm-password', 'short');
      await page.click('#password-form button[type="submit"]');
      await expectFieldError(page, 'new-password', `Use at least ${MIN_PASSWORD_CHARS} characters (5 so far).`);
      await page.fill('#new-password', user.password);
      await expectFieldError(page, 'new-password', 'Choose a password other than the current one.');
      await page.fill('#new-password', 'Password123');
      await page.locator('#new-password.is-invalid').waitFor({ state: 'detached' });
      await expectFieldError(page, 'confirm-password', 'The passwords do not match.');
      expect(puts).toBe(0);

      await page.fill('#confirm-password', 'Password123');
      const [weak] = await Promise.all([page.waitForResponse(isPath('/user/password', 'PUT')), page.click('#password-form button[type="submit"]')]);
      expect(weak.status()).toBe(422);
      await expectFieldError(page, 'new-password', 'New password is one of the most common passwords.');
      expect(await text(page, '#password-error')).toBe(((await weak.json()) as { detail: string }).detail);

      const fresh = `pw-${randomBytes(12).toString('base64url')}`;
      await page.fill('#current-password', 'not-my-password');
      await page.fill('#new-password', fresh);
      await page.fill('#confirm-password', fresh);
      const [wrong] = await Promise.all([page.waitForResponse(isPath('/user/password', 'PUT')), page.click('#password-form button[type="submit"]')]);
      expect(wrong.status()).toBe(403);
      await expectFieldError(page, 'current-password', 'Current password is wrong.');
      expect(await page.locator('#new-password.is-invalid').count()).toBe(0);
      // Still logged in: nothing changed.
      expect(await page.locator('#logged-in').isVisible()).toBe(true);
    });

    test('when the password is changed, then every session ends, the login page says so, and only the new password works', async () => {
      const { page, context } = await open();
      const user = await makeUser('ursula');
      const elsewhere = await apiLogin(user);
      await loggedIn(page, context, user);
      const fresh = `pw-${randomBytes(12).toString('base64url')}`;
      await page.fill('#current-password', user.password);
      await page.fill('#new-password', fresh);
      await page.fill('#confirm-password', fresh);
      const [changed] = await Promise.all([page.waitForResponse(isPath('/user/password', 'PUT')), page.click('#password-form button[type="submit"]')]);
      expect(changed.status()).toBe(204);
      await page.locator('#login-notice').waitFor({ state: 'visible' });
      expect(page.url()).toBe(`${base}/login`);
      expect(await text(page, '#login-notice')).toBe('Your password was changed and all your sessions have ended. Log in with the new password.');

      const old = await fetch(`${base}/login`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(user) });
      expect(old.status).toBe(401);
      const refresh = await fetch(`${base}/refresh`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ refresh_token: elsewhere.refresh_token }),
      });
      expect(refresh.status).toBe(401);
      await page.fill('#name', user.name);
      await page.fill('#password', fresh);
      await page.click('#login-form button[type="submit"]');
      await page.waitForURL(`${base}/`);
      await page.locator('#logged-in').waitFor({ state: 'visible' });
    });
  });

  describe('accessibility (axe-core) and screenshots', () => {
    /** Each page in the state a person sees it; `name` names its screenshots. */
    const pages: { name: string; show: (page: Page, context: BrowserContext) => Promise<void> }[] = [
      { name: 'login', show: async (page) => void (await page.goto('/login')) },
      {
        name: 'login-errors',
        show: async (page) => {
          await page.goto('/login');
          await page.click('#login-form button[type="submit"]');
          await page.locator('#password.is-invalid').waitFor();
        },
      },
      { name: 'signup', show: async (page) => void (await page.goto('/signup')) },
      {
        name: 'account',
        show: async (page, context) => {
          const user = await makeUser('vera');
          await apiLogin(user, 'Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0');
          await loggedIn(page, context, user);
        },
      },
      {
        name: 'account-sessions',
        show: async (page, context) => {
          const user = await makeUser('xena');
          await apiLogin(
            user,
            'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1',
          );
          await loggedIn(page, context, user);
          await page.locator('#sessions-heading').evaluate((el) => el.scrollIntoView({ block: 'start' }));
        },
      },
      {
        name: 'account-activity',
        show: async (page, context) => {
          const user = await makeUser('yuri');
          await apiLogin(user, 'Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0');
          await loggedIn(page, context, user);
          await page.locator('#activity li[data-event]').first().waitFor();
          await page.locator('#activity-heading').evaluate((el) => el.scrollIntoView({ block: 'start' }));
        },
      },
      {
        name: 'account-confirm',
        show: async (page, context) => {
          const user = await makeUser('zoe');
          await apiLogin(user);
          await loggedIn(page, context, user);
          await page.click('#end-others');
          await page.locator('#confirm-modal.show').waitFor();
        },
      },
      {
        name: 'account-errors',
        show: async (page, context) => {
          await loggedIn(page, context, await makeUser('wim'));
          await page.click('#password-form button[type="submit"]');
          await page.locator('#new-password.is-invalid').waitFor();
          expect(await text(page, '#new-password-feedback')).toBe('Enter a new password.');
        },
      },
      {
        name: 'logged-out',
        show: async (page) => {
          await page.goto('/');
          await page.locator('#logged-out').waitFor({ state: 'visible' });
        },
      },
      { name: 'not-found', show: async (page) => void (await page.goto('/no/such/page')) },
      {
        name: 'docs',
        show: async (page) => {
          await page.goto('/docs/');
          await page.locator('#operations-users-getUser').waitFor({ state: 'visible', timeout: 20_000 });
        },
      },
    ];

    for (const scheme of ['light', 'dark'] as const) {
      test.each(pages.map((p) => [p.name, p] as const))(
        `when %s is shown in ${scheme} mode, then axe finds no serious or critical violation`,
        async (name, { show }) => {
          const { page, context } = await open(scheme);
          await show(page, context);
          // Animations and the spinner settled: colours are measured as they end up.
          await page.waitForTimeout(300);
          const shot = `${name}-${scheme}`;
          await page.screenshot({ path: path.join(SHOTS_DIR, `${shot}.png`) });
          if (process.env['UPDATE_SCREENSHOTS'] === '1' && README_SHOTS.has(shot)) {
            fs.mkdirSync(README_SHOTS_DIR, { recursive: true });
            await page.screenshot({ path: path.join(README_SHOTS_DIR, `${shot}.png`) });
          }
          const results = await new AxeBuilder({ page, axeSource: AXE_SOURCE }).analyze();
          expect(results.testEngine.version).toBe(
            (JSON.parse(fs.readFileSync(require.resolve('axe-core/package.json'), 'utf8')) as { version: string }).version,
          );
          const serious = results.violations
            .filter((v) => v.impact === 'serious' || v.impact === 'critical')
            .map((v) => ({ rule: v.id, impact: v.impact, nodes: v.nodes.map((n) => `${n.target.join(' ')}: ${n.failureSummary ?? ''}`) }));
          expect(serious).toEqual([]);
          // axe looked at the page as a person sees it: in the colour mode asked for.
          expect(await page.evaluate(() => document.documentElement.getAttribute('data-bs-theme'))).toBe(name === 'docs' ? null : scheme);
        },
        40_000,
      );
    }
  });
});
