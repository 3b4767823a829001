import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { AxeBuilder } from '@axe-core/playwright';
import { type Browser, type BrowserContext, chromium, type Page, type Response } from 'playwright-core';
import { CHROME_PATH, CHROMIUM_ARGS, describeBrowser, haveChromium, MISSING_CHROMIUM, RESULTS_DIR } from '../support/browser';
import { type RunningServer, SERVER_JS, startServer, tempDir } from '../support/server-process';

// The admin console as an admin uses it, in a real Chromium against the built server: search,
// pages, every action on an account (each destructive one confirmed in a modal), the API's
// refusals shown, the audit tab and its filters; a non-admin sees only the refusal; axe-core on
// each state in light and dark mode.

const ROOT = path.join(__dirname, '..', '..');
const SHOTS_DIR = path.join(RESULTS_DIR, 'admin');
/** Copies for the README, written only when asked: `UPDATE_SCREENSHOTS=1 npx jest test/e2e/admin.test.ts`. */
const README_SHOTS_DIR = path.join(ROOT, 'docs', 'screenshots');
const README_SHOTS = new Set(['admin-users-light', 'admin-audit-dark']);
const VIEWPORT = { width: 1200, height: 800 };
/** The console's page size (admin.js). */
const USERS_PAGE = 20;
const AXE_SOURCE = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
const ADMIN = { name: 'admin', password: `admin-${randomBytes(18).toString('base64url')}` };

type Scheme = 'light' | 'dark';
interface Account {
  name: string;
  password: string;
}

let counter = 0;
const uniqueName = (prefix: string) => `${prefix}${Date.now().toString(36)}${(counter += 1)}`;
const text = async (page: Page, selector: string) => ((await page.locator(selector).first().textContent()) ?? '').replace(/\s+/g, ' ').trim();
const isPath = (pathname: string, method: string) => (r: Response) => new URL(r.url()).pathname === pathname && r.request().method() === method;

describeBrowser('admin console', () => {
  let server: RunningServer | undefined;
  let dataDir = '';
  let base = '';
  let browser: Browser | undefined;
  const contexts: BrowserContext[] = [];
  const watches = new Map<Page, { csp: string[]; pageErrors: string[] }>();

  beforeAll(async () => {
    if (!haveChromium) throw new Error(MISSING_CHROMIUM);
    if (!fs.existsSync(SERVER_JS)) throw new Error(`${SERVER_JS} is missing: run \`npm run build\` first (npm test does).`);
    dataDir = tempDir('auth-admin-');
    server = await startServer({
      NODE_ENV: 'development',
      DATA_DIR: dataDir,
      DATABASE_URL: `sqlite:${path.join(dataDir, 'auth.db')}`,
      ADMIN_NAME: ADMIN.name,
      ADMIN_PASSWORD: ADMIN.password,
      ALLOW_SIGNUP: 'true',
      LOG_LEVEL: 'warn',
      JWT_SECRET: randomBytes(36).toString('base64url'),
      LOGIN_RATE_NAME: '100000',
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
    const watch = { csp: [] as string[], pageErrors: [] as string[] };
    watches.set(page, watch);
    page.on('console', (msg) => {
      if (/Content Security Policy/i.test(msg.text())) watch.csp.push(msg.text());
    });
    page.on('pageerror', (error) => watch.pageErrors.push(error.message));
    return { context, page };
  }

  /** An account made through the API (sign-up is on). */
  async function makeUser(prefix = 'user'): Promise<Account> {
    const user = { name: uniqueName(prefix), password: `pw-${randomBytes(12).toString('base64url')}` };
    const res = await fetch(`${base}/users`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(user) });
    expect(res.status).toBe(201);
    return user;
  }

  async function apiLogin(user: Account): Promise<globalThis.Response> {
    return fetch(`${base}/login`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(user) });
  }

  async function tokenOf(user: Account): Promise<string> {
    const res = await apiLogin(user);
    expect(res.status).toBe(200);
    return ((await res.json()) as { access_token: string }).access_token;
  }

  /** Logs the context in (the refresh cookie lands in its jar) and opens the console. */
  async function console_(page: Page, context: BrowserContext, user: Account = ADMIN): Promise<void> {
    const login = await context.request.post('/login', { data: { ...user, refresh_token_in: 'cookie' } });
    expect(login.status()).toBe(200);
    await page.goto('/admin');
  }

  async function adminConsole(scheme: Scheme = 'light'): Promise<Page> {
    const { page, context } = await open(scheme);
    await console_(page, context);
    await page.locator('#console').waitFor({ state: 'visible' });
    await page.locator('#users tr').first().waitFor();
    return page;
  }

  /** Types into the search box and waits for the debounced GET /users it leads to. */
  async function search(page: Page, q: string): Promise<void> {
    const answer = page.waitForResponse((r) => isPath('/users', 'GET')(r) && new URL(r.url()).searchParams.get('q') === q);
    await page.fill('#user-search', q);
    expect((await answer).status()).toBe(200);
    await page.locator('#users tr[data-user-name]').first().waitFor();
  }

  const row = (page: Page, name: string) => page.locator(`#users tr[data-user-name="${name}"]`);

  /** Clicks a row's action and answers its confirmation modal, which must name the account. */
  async function confirmed(page: Page, name: string, label: RegExp, answer: 'ok' | 'cancel'): Promise<void> {
    await row(page, name).getByRole('button', { name: label }).click();
    const modal = page.locator('#confirm-modal');
    await modal.waitFor({ state: 'visible' });
    await page.locator('#confirm-modal.show').waitFor();
    expect(await text(page, '#confirm-title')).toContain(name);
    await page.click(answer === 'ok' ? '#confirm-ok' : '#confirm-modal .modal-footer [data-bs-dismiss="modal"]');
    await modal.waitFor({ state: 'hidden' });
  }

  test('when a non-admin opens the console, then it says the admin role is needed and shows no data', async () => {
    const { page, context } = await open();
    const user = await makeUser('nora');
    const asked: string[] = [];
    page.on('request', (r) => asked.push(new URL(r.url()).pathname));
    await console_(page, context, user);
    await page.locator('#forbidden').waitFor({ state: 'visible' });
    expect(await text(page, '#forbidden')).toContain('You need the admin role');
    expect(await page.locator('#console').isHidden()).toBe(true);
    expect(await page.locator('#users tr').count()).toBe(0);
    expect(asked).not.toContain('/users');
    // The API refuses the data anyway.
    const res = await fetch(`${base}/users`, { headers: { Authorization: `Bearer ${await tokenOf(user)}` } });
    expect(res.status).toBe(403);
  });

  test('when nobody is logged in, then the console says so and links to the login page', async () => {
    const { page } = await open();
    await page.goto('/admin');
    await page.locator('#logged-out').waitFor({ state: 'visible' });
    expect(await page.locator('#logged-out a[href="/login"]').count()).toBe(1);
  });

  test('when the admin searches, then only matching accounts show; Next and Previous page through them', async () => {
    const prefix = `pg${randomBytes(3).toString('hex')}`;
    const made: string[] = [];
    for (let i = 0; i < USERS_PAGE + 5; i += 1) made.push((await makeUser(prefix)).name);
    const page = await adminConsole();
    await search(page, prefix);
    const names = () => page.locator('#users tr[data-user-name]').evaluateAll((rows) => rows.map((r) => (r as HTMLElement).dataset['userName']));
    const first = await names();
    expect(first).toEqual(made.slice(0, USERS_PAGE));
    expect(await page.isDisabled('#users-prev')).toBe(true);
    expect(await page.isEnabled('#users-next')).toBe(true);

    const [next] = await Promise.all([page.waitForResponse(isPath('/users', 'GET')), page.click('#users-next')]);
    expect(new URL(next.url()).searchParams.get('cursor')).toBeTruthy();
    await page.waitForFunction(() => document.querySelectorAll('#users tr[data-user-name]').length === 5);
    expect(await names()).toEqual(made.slice(USERS_PAGE));
    expect(await page.isDisabled('#users-next')).toBe(true);

    await page.click('#users-prev');
    await page.waitForFunction((n) => document.querySelectorAll('#users tr[data-user-name]').length === n, USERS_PAGE);
    expect(await names()).toEqual(first);
    expect(await page.isDisabled('#users-prev')).toBe(true);

    await page.fill('#user-search', 'no-such-name');
    await page.waitForFunction(() => /No account has a name like that/.test(document.getElementById('users')?.textContent ?? ''));
  });

  test('when the admin adds a user with the form, then it is listed and logs in; a taken name is told on its field', async () => {
    const page = await adminConsole();
    const user = { name: uniqueName('new'), password: `pw-${randomBytes(12).toString('base64url')}` };
    await page.click('#add-user summary');
    await page.fill('#new-name', user.name);
    await page.fill('#new-user-password', user.password);
    await page.selectOption('#new-role', 'admin');
    const [made] = await Promise.all([page.waitForResponse(isPath('/admin/users', 'POST')), page.click('#add-user-form button[type="submit"]')]);
    expect(made.status()).toBe(201);
    await row(page, user.name).waitFor();
    expect(await text(page, '#admin-notice')).toBe(`${user.name} was added as an admin.`);
    expect(await text(page, `#users tr[data-user-name="${user.name}"] .user-role`)).toBe('admin');
    expect((await apiLogin(user)).status).toBe(200);

    await page.fill('#new-name', user.name.toUpperCase());
    await page.fill('#new-user-password', `pw-${randomBytes(12).toString('base64url')}`);
    const [taken] = await Promise.all([page.waitForResponse(isPath('/admin/users', 'POST')), page.click('#add-user-form button[type="submit"]')]);
    expect(taken.status()).toBe(409);
    await page.locator('#new-name.is-invalid').waitFor();
    await page.locator('#add-user-error').waitFor({ state: 'visible' });

    // Deleted again: the tests after this one need "admin" to be the last admin.
    await confirmed(page, user.name, /^Delete\b/, 'ok');
    await row(page, user.name).waitFor({ state: 'detached' });
  });

  test('when the admin changes a role, then after confirming the row shows it, and back again', async () => {
    const user = await makeUser('rolf');
    const page = await adminConsole();
    await search(page, user.name);
    const [made] = await Promise.all([page.waitForResponse((r) => r.request().method() === 'PATCH'), confirmed(page, user.name, /^Make admin\b/, 'ok')]);
    expect(made.status()).toBe(200);
    await page.waitForFunction((n) => document.querySelector(`#users tr[data-user-name="${n}"] .user-role`)?.textContent === 'admin', user.name);
    expect(await text(page, '#admin-notice')).toBe(`${user.name} is now an admin.`);
    await confirmed(page, user.name, /^Make user\b/, 'ok');
    await page.waitForFunction((n) => document.querySelector(`#users tr[data-user-name="${n}"] .user-role`)?.textContent === 'user', user.name);
  });

  test('when the admin disables an account, then it can no longer log in; enabled, it can', async () => {
    const user = await makeUser('dora');
    const page = await adminConsole();
    await search(page, user.name);
    await confirmed(page, user.name, /^Disable\b/, 'ok');
    await page.waitForFunction((n) => document.querySelector(`#users tr[data-user-name="${n}"] .user-state`)?.textContent === 'disabled', user.name);
    // Refused as a wrong password is (the login does not tell who is disabled).
    expect((await apiLogin(user)).status).toBe(401);
    // Enabling takes nothing away: no confirmation.
    await row(page, user.name)
      .getByRole('button', { name: /^Enable\b/ })
      .click();
    await page.waitForFunction((n) => document.querySelector(`#users tr[data-user-name="${n}"] .user-state`)?.textContent === 'enabled', user.name);
    expect((await apiLogin(user)).status).toBe(200);
  });

  test('when the admin sets a password, then the rule is shown and checked, and the account logs in with the new one only', async () => {
    const user = await makeUser('pia');
    const page = await adminConsole();
    await search(page, user.name);
    await row(page, user.name)
      .getByRole('button', { name: /^Set password\b/ })
      .click();
    await page.locator('#password-modal.show').waitFor();
    expect(await text(page, '#password-title')).toBe(`Set a new password for ${user.name}`);
    expect(await text(page, '#set-password-help')).toContain('At least 8 characters');
    await page.fill('#set-password', 'short');
    await page.click('#set-password-form button[type="submit"]');
    await page.locator('#set-password.is-invalid').waitFor();
    expect(await text(page, '#set-password-feedback')).toBe('Use at least 8 characters (5 so far).');
    // A common password: the server's 422 under the field.
    await page.fill('#set-password', 'password123');
    const [weak] = await Promise.all([page.waitForResponse((r) => r.request().method() === 'PUT'), page.click('#set-password-form button[type="submit"]')]);
    expect(weak.status()).toBe(422);
    await page.locator('#set-password-error').waitFor({ state: 'visible' });
    const fresh = `new-${randomBytes(12).toString('base64url')}`;
    await page.fill('#set-password', fresh);
    await page.click('#set-password-form button[type="submit"]');
    await page.locator('#password-modal').waitFor({ state: 'hidden' });
    expect(await text(page, '#admin-notice')).toContain(`${user.name}'s password was set`);
    expect((await apiLogin(user)).status).toBe(401);
    expect((await apiLogin({ name: user.name, password: fresh })).status).toBe(200);
  });

  test("when the admin ends an account's sessions, then its token is refused on GET /user", async () => {
    const user = await makeUser('eva');
    const token = await tokenOf(user);
    expect((await fetch(`${base}/user`, { headers: { Authorization: `Bearer ${token}` } })).status).toBe(200);
    const page = await adminConsole();
    await search(page, user.name);
    await confirmed(page, user.name, /^End sessions\b/, 'ok');
    await page.waitForFunction(() => /session/.test(document.getElementById('admin-notice')?.textContent ?? ''));
    expect(await text(page, '#admin-notice')).toBe(`1 session of ${user.name} ended.`);
    expect((await fetch(`${base}/user`, { headers: { Authorization: `Bearer ${token}` } })).status).toBe(401);
  });

  test('when the admin cancels a delete, then the account stays; confirmed, it is gone and cannot log in', async () => {
    const user = await makeUser('dan');
    const page = await adminConsole();
    await search(page, user.name);
    const deletes: string[] = [];
    page.on('request', (r) => {
      if (r.method() === 'DELETE') deletes.push(r.url());
    });
    await confirmed(page, user.name, /^Delete\b/, 'cancel');
    expect(deletes).toEqual([]);
    expect(await row(page, user.name).count()).toBe(1);
    expect((await apiLogin(user)).status).toBe(200);

    await confirmed(page, user.name, /^Delete\b/, 'ok');
    await row(page, user.name).waitFor({ state: 'detached' });
    expect(deletes).toHaveLength(1);
    expect(await text(page, '#admin-notice')).toBe(`${user.name} was deleted.`);
    expect((await apiLogin(user)).status).toBe(401);
  });

  test('when the admin would demote the last admin, then the refusal (409 last_admin) is shown and nothing changes', async () => {
    const page = await adminConsole();
    await search(page, ADMIN.name);
    const [answer] = await Promise.all([page.waitForResponse((r) => r.request().method() === 'PATCH'), confirmed(page, ADMIN.name, /^Make user\b/, 'ok')]);
    expect(answer.status()).toBe(409);
    expect(((await answer.json()) as { code: string }).code).toBe('last_admin');
    await page.locator('#admin-error').waitFor({ state: 'visible' });
    expect(await text(page, '#admin-error')).toMatch(/^Changing the role failed: /);
    expect(await text(page, '#admin-error')).toContain(((await answer.json()) as { detail: string }).detail);
    expect(await text(page, `#users tr[data-user-name="${ADMIN.name}"] .user-role`)).toBe('admin');
  });

  test('when the audit tab opens, then it lists the events just made, and filters by event and by account', async () => {
    const user = await makeUser('aud');
    const page = await adminConsole();
    await search(page, user.name);
    await confirmed(page, user.name, /^Disable\b/, 'ok');
    await page.waitForFunction((n) => document.querySelector(`#users tr[data-user-name="${n}"] .user-state`)?.textContent === 'disabled', user.name);

    await Promise.all([page.waitForResponse(isPath('/audit', 'GET')), page.click('#audit-tab')]);
    await page.locator('#audit tr[data-event]').first().waitFor();
    // Newest first: the disabling, by the admin, of this account.
    expect(await page.locator('#audit tr[data-event]').first().getAttribute('data-event')).toBe('user_disabled');
    expect(await text(page, '#audit tr[data-event] .audit-event')).toBe('Account disabled');
    expect(await text(page, '#audit tr[data-event] td:nth-child(4)')).toBe(user.name);

    await page.selectOption('#audit-event', 'signup');
    const [filtered] = await Promise.all([page.waitForResponse(isPath('/audit', 'GET')), page.click('#audit-form button[type="submit"]')]);
    expect(new URL(filtered.url()).searchParams.get('event')).toBe('signup');
    await page.waitForFunction(() =>
      Array.from(document.querySelectorAll('#audit tr[data-event]')).every((r) => (r as HTMLElement).dataset['event'] === 'signup'),
    );
    expect(await page.locator('#audit tr[data-event]').count()).toBeGreaterThan(1);

    // "Events" on a user: that account's events only.
    await page.click('#users-tab');
    await page.locator('#users-panel.show').waitFor();
    await Promise.all([
      page.waitForResponse(isPath('/audit', 'GET')),
      row(page, user.name)
        .getByRole('button', { name: /^Events\b/ })
        .click(),
    ]);
    await page.waitForFunction(() => document.querySelectorAll('#audit tr[data-event]').length === 2);
    expect(await page.locator('#audit tr[data-event]').evaluateAll((rows) => rows.map((r) => (r as HTMLElement).dataset['event']))).toEqual([
      'user_disabled',
      'signup',
    ]);
  });

  describe('accessibility (axe-core) and screenshots', () => {
    const states: { name: string; show: (page: Page) => Promise<void> }[] = [
      { name: 'admin-users', show: async () => undefined },
      {
        name: 'admin-audit',
        show: async (page) => {
          await page.click('#audit-tab');
          await page.locator('#audit tr[data-event]').first().waitFor();
        },
      },
      {
        name: 'admin-confirm',
        show: async (page) => {
          const user = await makeUser('axe');
          await search(page, user.name);
          await row(page, user.name)
            .getByRole('button', { name: /^Delete\b/ })
            .click();
          await page.locator('#confirm-modal.show').waitFor();
        },
      },
      {
        name: 'admin-error',
        show: async (page) => {
          await search(page, ADMIN.name);
          await confirmed(page, ADMIN.name, /^Disable\b/, 'ok');
          await page.locator('#admin-error').waitFor({ state: 'visible' });
        },
      },
    ];
    for (const scheme of ['light', 'dark'] as const) {
      test.each(states.map((s) => [s.name, s] as const))(
        `when %s is shown in ${scheme} mode, then axe finds no serious or critical violation`,
        async (name, { show }) => {
          const page = await adminConsole(scheme);
          await show(page);
          await page.waitForTimeout(400);
          const shot = `${name}-${scheme}`;
          await page.screenshot({ path: path.join(SHOTS_DIR, `${shot}.png`) });
          if (process.env['UPDATE_SCREENSHOTS'] === '1' && README_SHOTS.has(shot)) {
            fs.mkdirSync(README_SHOTS_DIR, { recursive: true });
            await page.screenshot({ path: path.join(README_SHOTS_DIR, `${shot}.png`) });
          }
          const results = await new AxeBuilder({ page, axeSource: AXE_SOURCE }).analyze();
          const serious = results.violations
            .filter((v) => v.impact === 'serious' || v.impact === 'critical')
            .map((v) => ({ rule: v.id, impact: v.impact, nodes: v.nodes.map((n) => `${n.target.join(' ')}: ${n.failureSummary ?? ''}`) }));
          expect(serious).toEqual([]);
          expect(await page.evaluate(() => document.documentElement.getAttribute('data-bs-theme'))).toBe(scheme);
        },
        40_000,
      );
    }
  });
});
