// The home page: finds the session from the httpOnly refresh cookie, shows who is logged in,
// keeps the access token fresh and logs out. The access token lives only in this module's
// memory: never in localStorage, sessionStorage or a readable cookie, where an injected script
// could read it. Other tabs share renewals and logouts through session.js.
import { api, ApiError, showAlert } from './api.js';
import { announceLogout, onSessionChange, refresh as renew } from './session.js';

const REDIRECT_SECONDS = 3;
/** After a failed renewal that was not a 401 (a network blip), while the token may still be good. */
const RETRY_MS = 10_000;

let accessToken = null;
let refreshTimer = null;
let redirecting = false;

const $ = (id) => document.getElementById(id);

function show(section) {
  for (const id of ['checking', 'logged-in', 'logged-out']) $(id).hidden = id !== section;
}

/** Renews the access token a little before it runs out: a fifth of its life, at most a minute early. */
function scheduleRefresh(expiresIn) {
  const lead = Math.min(60, expiresIn / 5);
  renewIn(Math.max(1, expiresIn - lead) * 1000);
}

function renewIn(ms) {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => {
    refresh().catch((error) => {
      if (error instanceof ApiError && error.status === 401) loggedOut();
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

function loggedOut() {
  forget();
  if (redirecting) return;
  redirecting = true;
  show('logged-out');
  let left = REDIRECT_SECONDS;
  $('countdown').textContent = String(left);
  const tick = setInterval(() => {
    left -= 1;
    $('countdown').textContent = String(Math.max(left, 0));
    if (left <= 0) {
      clearInterval(tick);
      window.location.assign('/login');
    }
  }, 1000);
}

async function showUser() {
  const user = await api('GET', '/user', { token: accessToken });
  $('user-name').textContent = user.name;
  $('user-role').textContent = user.role;
  show('logged-in');
}

async function logout() {
  const button = $('logout');
  button.disabled = true;
  button.querySelector('.spinner-border').hidden = false;
  try {
    try {
      await api('POST', '/logout', { token: accessToken });
    } catch (error) {
      // An access token that ran out while the tab slept: renew it once and try again, so the
      // session really ends on the server rather than only in this tab.
      if (!(error instanceof ApiError) || error.status !== 401) throw error;
      await refresh();
      await api('POST', '/logout', { token: accessToken });
    }
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 401) {
      button.disabled = false;
      button.querySelector('.spinner-border').hidden = true;
      showAlert($('home-error'), `Logging out failed: ${error.message}`);
      return;
    }
    // 401 even after a refresh: there is no session left to end.
  }
  forget();
  announceLogout();
  window.location.assign('/login');
}

async function start() {
  $('logout').addEventListener('click', () => {
    logout();
  });
  onSessionChange((change) => {
    // Only a tab that has a session takes another tab's news; one still loading gets it from refresh().
    if (accessToken === null) return;
    if (change.type === 'refreshed') use(change);
    else if (change.type === 'logged-out') loggedOut();
  });
  try {
    await refresh();
    await showUser();
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      loggedOut();
      return;
    }
    forget();
    show(null);
    showAlert($('load-error'), `Could not load your session: ${error.message}`);
  }
}

start();
