// The account page: finds the session from the httpOnly refresh cookie, shows who is logged in,
// changes the password, lists the sessions and ends them, keeps the access token fresh and logs
// out. The access token lives only in this module's memory: never in localStorage,
// sessionStorage or a readable cookie, where an injected script could read it. Other tabs share
// renewals and logouts through session.js.
import { api, ApiError, apiPage, busy, clearFieldErrors, hideAlert, setFieldError, showAlert, showFieldErrors } from './api.js';
import { confirmAction } from './confirm.js';
import { ago, element, eventWords, timeElement } from './events.js';
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
  return withRenewal(() => api(method, path, { token: accessToken, body }));
}

/** A GET of a paged list with the access token: its items and the next page's path. */
function authedPage(path) {
  return withRenewal(() => apiPage(path, { token: accessToken }));
}

async function withRenewal(call) {
  try {
    return await call();
  } catch (error) {
    if (!isUnauthorized(error)) throw error;
    await refresh();
    return call();
  }
}

async function showUser() {
  user = await authed('GET', '/user');
  $('user-name').textContent = user.name;
  $('user-role').textContent = user.role;
  // A link only: the console asks GET /user itself, and the API refuses a non-admin anyway.
  $('admin-link').hidden = user.role !== 'admin';
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

/** "Firefox 128.0 on Linux", from what the API read of the session's user agent. */
function describeSession(session) {
  if (session.browser && session.os) return `${session.browser} on ${session.os}`;
  return session.browser || session.os || (session.user_agent ? 'Other client' : 'Unknown device');
}

/** One list item; textContent only: the user agent is whatever a client sent. */
function sessionItem(session) {
  const item = element('li', 'list-group-item d-flex flex-wrap justify-content-between align-items-start gap-2');
  item.dataset.sessionId = session.id;
  const name = describeSession(session);

  const about = element('div', 'flex-grow-1');
  const title = element('div', 'fw-semibold', name);
  if (session.current) {
    title.append(' ', element('span', 'badge text-bg-success', 'This session'));
    item.classList.add('current-session');
  }
  const times = element('div', 'small text-body-secondary');
  times.append('Logged in ', timeElement(session.created_at), ' · last active ', timeElement(session.last_used_at));
  const place = element('div', 'small text-body-secondary session-address', session.address ? `From ${session.address}` : 'Address not known');
  about.append(title, times, place);
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
  const others = sessions.filter((s) => !s.current).length;
  if (others === 0) list.append(element('li', 'list-group-item text-body-secondary small', 'This is your only session.'));
  $('end-others').hidden = others === 0;
}

async function endOtherSessions() {
  const notice = $('sessions-notice');
  hideAlert(notice);
  hideAlert($('sessions-error'));
  const count = $('sessions').querySelectorAll('li[data-session-id]:not(.current-session)').length;
  const confirmed = await confirmAction({
    title: 'End all other sessions?',
    body: `${count === 1 ? 'Your other session' : `Your ${count} other sessions`} will be logged out at once. This session stays.`,
    action: 'End other sessions',
  });
  if (!confirmed) return;
  const button = $('end-others');
  button.disabled = true;
  let result;
  try {
    result = await authed('DELETE', '/sessions');
  } catch (error) {
    button.disabled = false;
    if (isUnauthorized(error)) ended('session-ended');
    else showAlert($('sessions-error'), `Ending the other sessions failed: ${error.message}`);
    return;
  }
  button.disabled = false;
  const n = result.sessions_ended;
  showAlert(notice, n === 1 ? '1 other session was ended.' : `${n} other sessions were ended.`, 'success');
  try {
    await loadSessions();
  } catch (error) {
    if (isUnauthorized(error)) ended('session-ended');
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

// ---- Recent activity ----------------------------------------------------------------------

const ACTIVITY_PAGE = 10;
/** The next page of GET /user/activity, from its Link header; null once the last is shown. */
let activityNext = null;

const BY_WORDS = { self: 'by you', admin: 'by an admin', none: '' };

/** One event; textContent only: the address and user agent are whatever a client sent. */
function activityItem(event) {
  const item = element('li', 'list-group-item');
  item.dataset.event = event.event;
  const title = element('div', 'fw-semibold activity-event', eventWords(event.event));
  const by = BY_WORDS[event.by];
  if (by) title.append(' ', element('span', 'fw-normal text-body-secondary', by));
  const meta = element('div', 'small text-body-secondary');
  meta.append(timeElement(event.at));
  if (event.address) meta.append(` · from ${event.address}`);
  const device = [event.browser, event.os].filter(Boolean).join(' on ');
  if (device) meta.append(` · ${device}`);
  item.append(title, meta);
  return item;
}

async function loadActivity(more = false) {
  const path = more && activityNext ? activityNext : `/user/activity?limit=${ACTIVITY_PAGE}`;
  const { items, next } = await authedPage(path);
  const list = $('activity');
  if (!more) list.replaceChildren();
  list.append(...items.map(activityItem));
  if (list.children.length === 0) list.append(element('li', 'list-group-item text-body-secondary small', 'No activity recorded yet.'));
  activityNext = next;
  $('activity-more').hidden = next === null;
  $('recent-activity').hidden = false;
}

async function moreActivity() {
  const button = $('activity-more');
  button.disabled = true;
  hideAlert($('activity-error'));
  try {
    await loadActivity(true);
  } catch (error) {
    if (isUnauthorized(error)) ended('session-ended');
    else showAlert($('activity-error'), `Could not load more activity: ${error.message}`);
  } finally {
    button.disabled = false;
  }
}

async function start() {
  $('logout').addEventListener('click', () => {
    logout();
  });
  $('end-others').addEventListener('click', () => {
    endOtherSessions();
  });
  $('activity-more').addEventListener('click', () => {
    moreActivity();
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
  try {
    await loadActivity();
  } catch (error) {
    if (isUnauthorized(error)) ended('session-ended');
    else {
      $('recent-activity').hidden = false;
      showAlert($('activity-error'), `Could not load your activity: ${error.message}`);
    }
  }
}

start();
