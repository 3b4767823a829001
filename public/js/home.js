// The account page: finds the session from the httpOnly refresh cookie, shows who is logged in,
// changes the password, lists the sessions and ends them, keeps the access token fresh and logs
// out. The access token lives only in this module's memory: never in localStorage,
// sessionStorage or a readable cookie, where an injected script could read it. Other tabs share
// renewals and logouts through session.js.
import { api, ApiError, busy, clearFieldErrors, hideAlert, setFieldError, showAlert, showFieldErrors } from './api.js';
import { checkAsTyped, passwordProblem } from './password-rule.js';
import { announceLogout, onSessionChange, refresh as renew } from './session.js';

const REDIRECT_SECONDS = 3;
/** After a failed renewal that was not a 401 (a network blip), while the token may still be good. */
const RETRY_MS = 10_000;

/**
 * Why the page stops showing the account: what it says, and the reason handed to the login page
 * (login.js words it there again).
 */
const ENDINGS = {
  // The page opened without a session (never logged in, or the cookie ran out).
  none: { text: 'You are not logged in.', reason: null },
  // Logged out here or in another tab.
  'logged-out': { text: 'You have been logged out.', reason: 'logged-out' },
  // The session was live and a renewal was refused: ended on another device, by a password change
  // elsewhere, by an administrator, or it reached its maximum age.
  'session-ended': { text: 'Your session has ended.', reason: 'session-ended' },
  'password-changed': { text: 'Your password was changed and all your sessions have ended.', reason: 'password-changed' },
};

let accessToken = null;
let refreshTimer = null;
let redirecting = false;
let user = null;

const $ = (id) => document.getElementById(id);

function show(section) {
  for (const id of ['checking', 'logged-in', 'logged-out']) $(id).hidden = id !== section;
}

const loginUrl = (reason) => (reason ? `/login?reason=${encodeURIComponent(reason)}` : '/login');

/** Renews the access token a little before it runs out: a fifth of its life, at most a minute early. */
function scheduleRefresh(expiresIn) {
  const lead = Math.min(60, expiresIn / 5);
  renewIn(Math.max(1, expiresIn - lead) * 1000);
}

function renewIn(ms) {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => {
    refresh().catch((error) => {
      if (isUnauthorized(error)) ended('session-ended');
      else renewIn(RETRY_MS);
    });
  }, ms);
}

function use(pair) {
  accessToken = pair.access_token;
  scheduleRefresh(pair.expires_in);
}

/**
 * A new access token from the refresh cookie. Calls made at once share one POST /refresh, in this
 * tab and across tabs: the server rotates the refresh token on every use.
 */
async function refresh() {
  use(await renew());
}

function forget() {
  accessToken = null;
  clearTimeout(refreshTimer);
  refreshTimer = null;
}

const isUnauthorized = (error) => error instanceof ApiError && error.status === 401;

/** Says why the account is gone and goes to the login page after a short countdown. */
function ended(how) {
  forget();
  if (redirecting) return;
  redirecting = true;
  const ending = ENDINGS[how] || ENDINGS['session-ended'];
  $('logged-out-text').textContent = ending.text;
  const target = loginUrl(ending.reason);
  $('login-link').href = target;
  show('logged-out');
  let left = REDIRECT_SECONDS;
  $('countdown').textContent = String(left);
  const tick = setInterval(() => {
    left -= 1;
    $('countdown').textContent = String(Math.max(left, 0));
    if (left <= 0) {
      clearInterval(tick);
      window.location.assign(target);
    }
  }, 1000);
}

/**
 * An API call with the access token. A 401 may only mean the token ran out while the tab slept:
 * renew once and try again. A 401 from the renewal itself means the session is over.
 */
async function authed(method, path, body) {
  try {
    return await api(method, path, { token: accessToken, body });
  } catch (error) {
    if (!isUnauthorized(error)) throw error;
    await refresh();
    return api(method, path, { token: accessToken, body });
  }
}

async function showUser() {
  user = await authed('GET', '/user');
  $('user-name').textContent = user.name;
  $('user-role').textContent = user.role;
  $('account-name').value = user.name;
}

async function logout() {
  const button = $('logout');
  button.disabled = true;
  button.querySelector('.spinner-border').hidden = false;
  try {
    await authed('POST', '/logout');
  } catch (error) {
    if (!isUnauthorized(error)) {
      button.disabled = false;
      button.querySelector('.spinner-border').hidden = true;
      showAlert($('home-error'), `Logging out failed: ${error.message}`);
      return;
    }
    // 401 even after a refresh: there is no session left to end.
  }
  forget();
  announceLogout('logged-out');
  window.location.assign(loginUrl('logged-out'));
}

// ---- Change password ----------------------------------------------------------------------

const passwordForm = $('password-form');
const currentInput = passwordForm.elements.namedItem('current_password');
const newInput = passwordForm.elements.namedItem('new_password');
const confirmInput = passwordForm.elements.namedItem('confirm');

function newPasswordProblem() {
  if (newInput.value === '') return 'Enter a new password.';
  const problem = passwordProblem(newInput.value, user ? user.name : '');
  if (problem) return problem;
  if (currentInput.value !== '' && newInput.value === currentInput.value) return 'Choose a password other than the current one.';
  return '';
}

const recheckNew = checkAsTyped(newInput, newPasswordProblem);
currentInput.addEventListener('input', recheckNew);
const recheckConfirm = checkAsTyped(confirmInput, () => (confirmInput.value === newInput.value ? '' : 'The passwords do not match.'));
newInput.addEventListener('input', recheckConfirm);

/** Where each problem code belongs when the server names no field. */
const PASSWORD_FIELD_FOR_CODE = { invalid_current_password: 'current_password', weak_password: 'new_password' };

function changePassword() {
  const errorBox = $('password-error');
  hideAlert(errorBox);
  clearFieldErrors(passwordForm);
  if (currentInput.value === '') setFieldError(currentInput, 'Enter your current password.');
  const problem = newPasswordProblem();
  if (problem) setFieldError(newInput, problem);
  if (confirmInput.value !== newInput.value) setFieldError(confirmInput, 'The passwords do not match.');
  const invalid = passwordForm.querySelector('.is-invalid');
  if (invalid) {
    invalid.focus();
    return;
  }
  busy(passwordForm, async () => {
    try {
      await authed('PUT', '/user/password', { current_password: currentInput.value, new_password: newInput.value });
    } catch (error) {
      if (isUnauthorized(error)) {
        ended('session-ended');
        return;
      }
      const fieldErrors = error.problem && error.problem.errors;
      if (!showFieldErrors(passwordForm, fieldErrors) && PASSWORD_FIELD_FOR_CODE[error.code]) {
        setFieldError(passwordForm.elements.namedItem(PASSWORD_FIELD_FOR_CODE[error.code]), error.message);
      }
      showAlert(errorBox, error.message);
      const marked = passwordForm.querySelector('.is-invalid');
      if (marked) marked.focus();
      return;
    }
    // Every session of this account has ended, this one too (the contract of PUT /user/password).
    passwordForm.reset();
    forget();
    announceLogout('password-changed');
    window.location.assign(loginUrl('password-changed'));
  });
}

passwordForm.addEventListener('submit', (event) => {
  event.preventDefault();
  changePassword();
});

// ---- Sessions -----------------------------------------------------------------------------

const when = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
const relative = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });

/** "just now", "5 minutes ago", "yesterday": how long ago `iso` was, in the largest unit that fits. */
function ago(iso) {
  const seconds = (Date.parse(iso) - Date.now()) / 1000;
  for (const [unit, size] of [
    ['day', 86_400],
    ['hour', 3_600],
    ['minute', 60],
  ]) {
    if (Math.abs(seconds) >= size) return relative.format(Math.round(seconds / size), unit);
  }
  return 'just now';
}

/**
 * A short name for a user agent ("Firefox on Linux"): enough to tell sessions apart until the
 * API reports session details (issue #14, step 2). The full text is shown beneath it.
 */
function describeAgent(agent) {
  if (!agent) return 'Unknown device';
  const browser = [
    [/Edg\//, 'Edge'],
    [/OPR\//, 'Opera'],
    [/Firefox\//, 'Firefox'],
    [/Chrom(e|ium)\//, 'Chrome'],
    [/Safari\//, 'Safari'],
    [/^curl\//, 'curl'],
  ].find(([re]) => re.test(agent))?.[1];
  const system = [
    [/Android/, 'Android'],
    [/iPhone|iPad/, 'iOS'],
    [/Windows/, 'Windows'],
    [/Mac OS X|Macintosh/, 'macOS'],
    [/CrOS/, 'ChromeOS'],
    [/Linux/, 'Linux'],
  ].find(([re]) => re.test(agent))?.[1];
  if (browser && system) return `${browser} on ${system}`;
  return browser || system || 'Other client';
}

function element(tag, className, text) {
  const el = document.createElement(tag);
  if (className) el.className = className;
  if (text !== undefined) el.textContent = text;
  return el;
}

function timeElement(iso) {
  const el = element('time', '', ago(iso));
  el.dateTime = iso;
  el.title = when.format(new Date(iso));
  return el;
}

/** One list item; textContent only: the user agent is whatever a client sent. */
function sessionItem(session) {
  const item = element('li', 'list-group-item d-flex flex-wrap justify-content-between align-items-start gap-2');
  item.dataset.sessionId = session.id;
  const name = describeAgent(session.user_agent);

  const about = element('div', 'flex-grow-1');
  const title = element('div', 'fw-semibold', name);
  if (session.current) {
    title.append(' ', element('span', 'badge text-bg-success', 'This session'));
    item.classList.add('current-session');
  }
  const times = element('div', 'small text-body-secondary');
  times.append('Logged in ', timeElement(session.created_at), ' · last active ', timeElement(session.last_used_at));
  about.append(title, times);
  if (session.user_agent) about.append(element('div', 'small text-body-secondary session-agent', session.user_agent));
  item.append(about);

  if (!session.current) {
    const button = element('button', 'btn btn-sm btn-outline-danger end-session');
    button.type = 'button';
    button.append(element('span', 'spinner-border spinner-border-sm me-1'), 'End session');
    const spinner = button.querySelector('.spinner-border');
    spinner.setAttribute('aria-hidden', 'true');
    spinner.hidden = true;
    // Each button says which session it ends, for those who hear the page rather than see it.
    button.setAttribute('aria-label', `End session: ${name}, last active ${ago(session.last_used_at)}`);
    button.addEventListener('click', () => endSession(session.id, button));
    item.append(button);
  }
  return item;
}

async function loadSessions() {
  const sessions = await authed('GET', '/sessions');
  const list = $('sessions');
  list.replaceChildren(...sessions.map(sessionItem));
  if (sessions.length === 1 && sessions[0].current) {
    list.append(element('li', 'list-group-item text-body-secondary small', 'This is your only session.'));
  }
}

async function endSession(id, button) {
  const notice = $('sessions-notice');
  hideAlert(notice);
  hideAlert($('sessions-error'));
  button.disabled = true;
  button.querySelector('.spinner-border').hidden = false;
  let message = 'The session was ended: it is logged out.';
  try {
    await authed('DELETE', `/sessions/${encodeURIComponent(id)}`);
  } catch (error) {
    if (isUnauthorized(error)) {
      ended('session-ended');
      return;
    }
    if (error.code !== 'session_not_found') {
      button.disabled = false;
      button.querySelector('.spinner-border').hidden = true;
      showAlert($('sessions-error'), `Ending the session failed: ${error.message}`);
      return;
    }
    message = 'That session had already ended.';
  }
  try {
    await loadSessions();
  } catch (error) {
    if (isUnauthorized(error)) {
      ended('session-ended');
      return;
    }
    button.closest('li')?.remove();
  }
  showAlert(notice, message, 'success');
}

async function start() {
  $('logout').addEventListener('click', () => {
    logout();
  });
  onSessionChange((change) => {
    // Only a tab that has a session takes another tab's news; one still loading gets it from refresh().
    if (accessToken === null) return;
    if (change.type === 'refreshed') use(change);
    else if (change.type === 'logged-out') ended(change.reason in ENDINGS ? change.reason : 'logged-out');
  });
  try {
    await refresh();
  } catch (error) {
    if (isUnauthorized(error)) {
      ended('none');
      return;
    }
    forget();
    show(null);
    showAlert($('load-error'), `Could not load your session: ${error.message}`);
    return;
  }
  try {
    await showUser();
    show('logged-in');
  } catch (error) {
    if (isUnauthorized(error)) {
      ended('session-ended');
      return;
    }
    forget();
    show(null);
    showAlert($('load-error'), `Could not load your account: ${error.message}`);
    return;
  }
  try {
    await loadSessions();
  } catch (error) {
    if (isUnauthorized(error)) ended('session-ended');
    else showAlert($('sessions-error'), `Could not load your sessions: ${error.message}`);
  }
}

start();
