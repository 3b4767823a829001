// The admin console: accounts (search, pages, role, disabled, password, sessions, delete) and
// the audit trail. The page itself is static and public; what it shows comes from admin-only
// operations, which refuse any other token (403), so a non-admin sees only the refusal. The
// access token lives in this module's memory only, renewed through session.js as on the account
// page.
import { api, ApiError, apiPage, busy, clearFieldErrors, hideAlert, setFieldError, showAlert, showFieldErrors } from './api.js';
import { confirmAction } from './confirm.js';
import { dateElement, element, EVENT_NAMES, eventWords, timeElement } from './events.js';
import { checkAsTyped, passwordProblem } from './password-rule.js';
import { onSessionChange, refresh as renew } from './session.js';

const USERS_PAGE = 20;
const AUDIT_PAGE = 25;
const SEARCH_DELAY_MS = 300;

const $ = (id) => document.getElementById(id);

let accessToken = null;
let refreshTimer = null;
/** The signed-in admin (GET /user). */
let me = null;

function show(section) {
  for (const id of ['checking', 'console', 'logged-out', 'forbidden']) $(id).hidden = id !== section;
}

const isUnauthorized = (error) => error instanceof ApiError && error.status === 401;

function use(pair) {
  accessToken = pair.access_token;
  clearTimeout(refreshTimer);
  // Renewed a fifth of its life early, at most a minute: as the account page does.
  const lead = Math.min(60, pair.expires_in / 5);
  refreshTimer = setTimeout(
    () => {
      renew().then(use, (error) => {
        if (isUnauthorized(error)) loggedOut();
      });
    },
    Math.max(1, pair.expires_in - lead) * 1000,
  );
}

function loggedOut() {
  accessToken = null;
  clearTimeout(refreshTimer);
  show('logged-out');
}

/** A call with the access token; a 401 may mean it ran out while the tab slept: renew once. */
async function withRenewal(call) {
  try {
    return await call();
  } catch (error) {
    if (!isUnauthorized(error)) throw error;
    use(await renew());
    return call();
  }
}

const authed = (method, path, body) => withRenewal(() => api(method, path, { token: accessToken, body }));
const authedPage = (path) => withRenewal(() => apiPage(path, { token: accessToken }));

/** An API failure in the page's alert, in the server's words (problem+json `detail`). */
function failed(what, error) {
  if (isUnauthorized(error)) {
    loggedOut();
    return;
  }
  hideAlert($('admin-notice'));
  showAlert($('admin-error'), `${what} failed: ${error.message}`);
}

function notice(message) {
  hideAlert($('admin-error'));
  showAlert($('admin-notice'), message, 'success');
}

/**
 * Pages of a list that only goes forwards (RFC 8288 `rel="next"`): the paths of the pages seen
 * before this one are kept, so "Previous" goes back to exactly the page that was shown.
 */
function pager({ prev, next, load }) {
  let stack = [];
  let current = null;
  let following = null;
  async function open(path) {
    const page = await load(path);
    current = path;
    following = page.next;
    next.disabled = following === null;
    prev.disabled = stack.length === 0;
  }
  next.addEventListener('click', () => {
    if (following === null) return;
    const from = current;
    open(following).then(
      () => {
        stack.push(from);
        prev.disabled = false;
      },
      (error) => failed('Loading the next page', error),
    );
  });
  prev.addEventListener('click', () => {
    if (stack.length === 0) return;
    const back = stack[stack.length - 1];
    open(back).then(
      () => {
        stack.pop();
        prev.disabled = stack.length === 0;
      },
      (error) => failed('Loading the previous page', error),
    );
  });
  return {
    /** Starts again from a first page (a new search or filter). */
    first(path) {
      stack = [];
      return open(path);
    },
    /** Loads the page shown again (after a change). */
    reload() {
      return open(current);
    },
  };
}

// ---- Users --------------------------------------------------------------------------------

/** Names by id, of every account seen: the audit tab names who acted. */
const names = new Map();

/**
 * A row's action. Its accessible name is the visible words and then the account's name
 * ("Delete: alice"): the words a person sees come first, as WCAG 2.5.3 asks (axe's
 * label-content-name-mismatch), and each button still says whom it acts on.
 */
function actionButton(label, icon, kind, name, onClick) {
  const button = element('button', `btn btn-sm btn-outline-${kind}`);
  button.type = 'button';
  const glyph = element('i', `bi bi-${icon} me-1`);
  glyph.setAttribute('aria-hidden', 'true');
  button.append(glyph, label, element('span', 'visually-hidden', `: ${name}`));
  button.addEventListener('click', onClick);
  return button;
}

/** One account's row; textContent only: names are whatever people signed up with. */
function userRow(user) {
  names.set(user.id, user.name);
  const row = element('tr');
  row.dataset.userId = user.id;
  row.dataset.userName = user.name;
  const name = element('th', 'user-name', user.name);
  name.scope = 'row';
  if (me && user.id === me.id) name.append(' ', element('span', 'badge text-bg-info', 'you'));
  const role = element('td', 'user-role');
  role.append(element('span', `badge ${user.role === 'admin' ? 'text-bg-primary' : 'text-bg-secondary'}`, user.role));
  const state = element('td', 'user-state');
  state.append(element('span', `badge ${user.disabled ? 'text-bg-warning' : 'text-bg-success'}`, user.disabled ? 'disabled' : 'enabled'));
  const created = element('td', 'small');
  created.append(dateElement(user.created_at));

  const actions = element('td');
  const group = element('div', 'd-flex flex-wrap gap-1');
  const toRole = user.role === 'admin' ? 'user' : 'admin';
  group.append(
    actionButton(toRole === 'admin' ? 'Make admin' : 'Make user', 'person-gear', 'primary', user.name, () => changeRole(user, toRole)),
    user.disabled
      ? actionButton('Enable', 'check-circle', 'success', user.name, () => setDisabled(user, false))
      : actionButton('Disable', 'slash-circle', 'secondary', user.name, () => setDisabled(user, true)),
    actionButton('Set password', 'key', 'secondary', user.name, () => openPasswordModal(user)),
    actionButton('End sessions', 'box-arrow-right', 'secondary', user.name, () => endSessions(user)),
    actionButton('Events', 'journal-text', 'secondary', user.name, () => showEventsOf(user)),
    actionButton('Delete', 'trash', 'danger', user.name, () => deleteUser(user)),
  );
  actions.append(group);
  row.append(name, role, state, created, actions);
  return row;
}

function usersPath() {
  const q = $('user-search').value.trim();
  const params = new URLSearchParams({ limit: String(USERS_PAGE) });
  if (q) params.set('q', q);
  return `/users?${params}`;
}

const users = pager({
  prev: $('users-prev'),
  next: $('users-next'),
  async load(path) {
    const page = await authedPage(path);
    const body = $('users');
    body.replaceChildren(...page.items.map(userRow));
    if (page.items.length === 0) {
      const row = element('tr');
      const cell = element('td', 'text-body-secondary', $('user-search').value.trim() ? 'No account has a name like that.' : 'There are no accounts.');
      cell.colSpan = 5;
      row.append(cell);
      body.append(row);
    }
    return page;
  },
});

/** Runs a change and shows the page of accounts again, or the API's refusal. */
async function change(what, work, done) {
  try {
    await work();
  } catch (error) {
    failed(what, error);
    return;
  }
  notice(done);
  try {
    await users.reload();
  } catch (error) {
    failed('Loading the accounts', error);
  }
}

async function changeRole(user, role) {
  const ok = await confirmAction({
    title: `Make ${user.name} ${role === 'admin' ? 'an admin' : 'a user'}?`,
    body: `${user.name}'s role becomes ${role}. Every session of ${user.name} ends at once; the next login carries the new role.`,
    action: `Make ${role}`,
  });
  if (!ok) return;
  await change(
    'Changing the role',
    () => authed('PATCH', `/users/${encodeURIComponent(user.id)}`, { role }),
    `${user.name} is now ${role === 'admin' ? 'an admin' : 'a user'}.`,
  );
}

async function setDisabled(user, disabled) {
  if (disabled) {
    const ok = await confirmAction({
      title: `Disable ${user.name}?`,
      body: `${user.name} can no longer log in, and every session of ${user.name} ends at once. You can enable the account again.`,
      action: 'Disable',
    });
    if (!ok) return;
  }
  await change(
    disabled ? 'Disabling the account' : 'Enabling the account',
    () => authed('PATCH', `/users/${encodeURIComponent(user.id)}`, { disabled }),
    disabled ? `${user.name} is disabled.` : `${user.name} is enabled.`,
  );
}

async function endSessions(user) {
  const ok = await confirmAction({
    title: `End every session of ${user.name}?`,
    body: `${user.name} is logged out everywhere at once, and has to log in again.`,
    action: 'End sessions',
  });
  if (!ok) return;
  let ended = 0;
  await change(
    'Ending the sessions',
    async () => {
      ended = (await authed('DELETE', `/users/${encodeURIComponent(user.id)}/sessions`)).sessions_ended;
    },
    '',
  );
  if (!$('admin-notice').hidden) notice(`${ended === 1 ? '1 session' : `${ended} sessions`} of ${user.name} ended.`);
}

async function deleteUser(user) {
  const ok = await confirmAction({
    title: `Delete ${user.name}?`,
    body: `The account ${user.name} is deleted and logged out everywhere. This cannot be undone; the audit trail keeps its events.`,
    action: `Delete ${user.name}`,
  });
  if (!ok) return;
  await change('Deleting the account', () => authed('DELETE', `/users/${encodeURIComponent(user.id)}`), `${user.name} was deleted.`);
}

// ---- Add a user ---------------------------------------------------------------------------

const addForm = $('add-user-form');
const newName = $('new-name');
const newPassword = $('new-user-password');

checkAsTyped(newPassword, () => passwordProblem(newPassword.value, newName.value));

addForm.addEventListener('submit', (event) => {
  event.preventDefault();
  clearFieldErrors(addForm);
  hideAlert($('add-user-error'));
  if (newName.value.trim() === '') setFieldError(newName, 'Enter a name.');
  const problem = newPassword.value === '' ? 'Enter a password.' : passwordProblem(newPassword.value, newName.value);
  if (problem) setFieldError(newPassword, problem);
  const invalid = addForm.querySelector('.is-invalid');
  if (invalid) {
    invalid.focus();
    return;
  }
  busy(addForm, async () => {
    let made;
    try {
      made = await authed('POST', '/admin/users', { name: newName.value, password: newPassword.value, role: $('new-role').value });
    } catch (error) {
      if (isUnauthorized(error)) {
        loggedOut();
        return;
      }
      const marked = showFieldErrors(addForm, error.problem && error.problem.errors);
      if (!marked && error.code === 'name_taken') setFieldError(newName, error.message);
      if (!marked && error.code === 'weak_password') setFieldError(newPassword, error.message);
      showAlert($('add-user-error'), error.message);
      return;
    }
    addForm.reset();
    notice(`${made.name} was added as ${made.role === 'admin' ? 'an admin' : 'a user'}.`);
    // Shown at once: the search finds the new account.
    $('user-search').value = made.name;
    await users.first(usersPath()).catch((error) => failed('Loading the accounts', error));
  });
});

// ---- Set a password -----------------------------------------------------------------------

const passwordForm = $('set-password-form');
const passwordInput = $('set-password');
/** The account whose password the open modal sets. */
let passwordFor = null;

checkAsTyped(passwordInput, () => passwordProblem(passwordInput.value, passwordFor ? passwordFor.name : ''));

function openPasswordModal(user) {
  passwordFor = user;
  passwordForm.reset();
  clearFieldErrors(passwordForm);
  hideAlert($('set-password-error'));
  $('password-title').textContent = `Set a new password for ${user.name}`;
  $('set-password-name').value = user.name;
  const el = $('password-modal');
  el.addEventListener('shown.bs.modal', () => passwordInput.focus(), { once: true });
  window.bootstrap.Modal.getOrCreateInstance(el).show();
}

passwordForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const user = passwordFor;
  if (!user) return;
  clearFieldErrors(passwordForm);
  hideAlert($('set-password-error'));
  const problem = passwordInput.value === '' ? 'Enter a new password.' : passwordProblem(passwordInput.value, user.name);
  if (problem) {
    setFieldError(passwordInput, problem);
    passwordInput.focus();
    return;
  }
  busy(passwordForm, async () => {
    try {
      await authed('PUT', `/users/${encodeURIComponent(user.id)}/password`, { password: passwordInput.value });
    } catch (error) {
      if (isUnauthorized(error)) {
        loggedOut();
        return;
      }
      if (!showFieldErrors(passwordForm, error.problem && error.problem.errors) && error.code === 'weak_password') setFieldError(passwordInput, error.message);
      showAlert($('set-password-error'), error.message);
      return;
    }
    passwordForm.reset();
    window.bootstrap.Modal.getOrCreateInstance($('password-modal')).hide();
    notice(`${user.name}'s password was set; every session of ${user.name} ended.`);
  });
});

// ---- Audit --------------------------------------------------------------------------------

const BY_ID_LENGTH = 8;

function who(id) {
  if (id === null) return element('span', 'text-body-secondary', 'nobody signed in');
  const name = names.get(id);
  return name ? element('span', '', name) : element('span', 'audit-id font-monospace small', id.slice(0, BY_ID_LENGTH));
}

function auditRow(event) {
  const row = element('tr');
  row.dataset.event = event.event;
  const at = element('td', 'small text-nowrap');
  at.append(timeElement(event.at));
  const what = element('td', 'audit-event', eventWords(event.event));
  const by = element('td');
  by.append(who(event.actor_id));
  const account = element('td', '', event.target_name ?? '');
  const address = element('td', 'small', event.address ?? '');
  const details = element(
    'td',
    'small text-body-secondary audit-details',
    Object.entries(event.details ?? {})
      .map(([k, v]) => `${k}: ${v}`)
      .join(', '),
  );
  row.append(at, what, by, account, address, details);
  return row;
}

const auditForm = $('audit-form');

/** A datetime-local value (the browser's local time) as RFC 3339 with its offset, as the API wants. */
const instant = (value) => (value ? new Date(value).toISOString() : '');

function auditPath() {
  const params = new URLSearchParams({ limit: String(AUDIT_PAGE) });
  for (const [name, value] of [
    ['user', $('audit-user').value.trim()],
    ['event', $('audit-event').value],
    ['since', instant($('audit-since').value)],
    ['until', instant($('audit-until').value)],
  ]) {
    if (value) params.set(name, value);
  }
  return `/audit?${params}`;
}

const audit = pager({
  prev: $('audit-prev'),
  next: $('audit-next'),
  async load(path) {
    const page = await authedPage(path);
    const body = $('audit');
    body.replaceChildren(...page.items.map(auditRow));
    if (page.items.length === 0) {
      const row = element('tr');
      const cell = element('td', 'text-body-secondary', 'No event matches.');
      cell.colSpan = 6;
      row.append(cell);
      body.append(row);
    }
    return page;
  },
});

function loadAudit() {
  hideAlert($('admin-error'));
  return audit.first(auditPath()).catch((error) => failed('Loading the audit trail', error));
}

function showEventsOf(user) {
  auditForm.reset();
  $('audit-user').value = user.id;
  window.bootstrap.Tab.getOrCreateInstance($('audit-tab')).show();
}

// ---- Start --------------------------------------------------------------------------------

async function start() {
  $('audit-event').append(
    ...EVENT_NAMES.map((name) => {
      const option = element('option', '', eventWords(name));
      option.value = name;
      return option;
    }),
  );
  onSessionChange((change) => {
    if (accessToken === null) return;
    if (change.type === 'refreshed') use(change);
    else if (change.type === 'logged-out') loggedOut();
  });
  try {
    use(await renew());
    me = await authed('GET', '/user');
  } catch (error) {
    if (isUnauthorized(error)) loggedOut();
    else {
      show(null);
      showAlert($('load-error'), `Could not load your session: ${error.message}`);
    }
    return;
  }
  // The page is public; the data is not: only an admin's token gets it (403 for any other).
  if (me.role !== 'admin') {
    show('forbidden');
    return;
  }
  show('console');

  let timer = null;
  $('user-search').addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      users.first(usersPath()).catch((error) => failed('Searching', error));
    }, SEARCH_DELAY_MS);
  });
  $('search-form').addEventListener('submit', (event) => {
    event.preventDefault();
    clearTimeout(timer);
    users.first(usersPath()).catch((error) => failed('Searching', error));
  });
  auditForm.addEventListener('submit', (event) => {
    event.preventDefault();
    loadAudit();
  });
  $('audit-clear').addEventListener('click', () => {
    auditForm.reset();
    loadAudit();
  });
  $('audit-tab').addEventListener('show.bs.tab', () => {
    loadAudit();
  });
  try {
    await users.first(usersPath());
  } catch (error) {
    failed('Loading the accounts', error);
  }
}

start();
