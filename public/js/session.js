// Shared by the pages that hold an access token: renews it with POST /refresh (the httpOnly
// cookie) and shares one renewal between the tabs of this origin. The server rotates the refresh
// token on every use, so two tabs sending the same cookie at once would race for one rotation.
// A Web Lock lets one tab refresh at a time; a BroadcastChannel hands the fresh access token to
// the other tabs, in memory only (same origin, never localStorage, sessionStorage or a cookie).
// Where either API is missing, each tab refreshes on its own, as before.
import { api } from './api.js';

const LOCK = 'auth-refresh';
const CHANNEL = 'auth';
/** A token another tab got this recently is used instead of refreshing again. */
const FRESH_MS = 5_000;
/** How long a tab that waited on the lock waits for the holder's token to arrive. */
const HANDOVER_MS = 1_000;

const channel = typeof BroadcastChannel === 'function' ? new BroadcastChannel(CHANNEL) : null;
const locks = typeof navigator !== 'undefined' && navigator.locks ? navigator.locks : null;

/** The last token another tab handed over, and when it arrived (this tab's clock). */
let handed = null;
let refreshing = null;
const listeners = new Set();
const waiters = new Set();

channel?.addEventListener('message', ({ data }) => {
  if (data === null || typeof data !== 'object') return;
  if (data.type === 'refreshed' && typeof data.access_token === 'string' && Number.isFinite(data.expires_in)) {
    handed = { pair: { access_token: data.access_token, expires_in: data.expires_in }, at: Date.now() };
    for (const listener of listeners) listener({ type: 'refreshed', ...handed.pair });
  } else if (data.type === 'logged-out') {
    handed = null;
    const reason = typeof data.reason === 'string' ? data.reason : 'logged-out';
    for (const listener of listeners) listener({ type: 'logged-out', reason });
  }
  // Any word from the lock holder ('refresh-failed' too) ends a wait for its handover.
  for (const wake of waiters) wake();
});

/** A token another tab handed over at or after `since` and at most FRESH_MS ago, or null. */
function handedSince(since) {
  if (!handed || handed.at < since || Date.now() - handed.at > FRESH_MS) return null;
  const age = Math.floor((Date.now() - handed.at) / 1000);
  return { access_token: handed.pair.access_token, expires_in: Math.max(1, handed.pair.expires_in - age) };
}

function nextMessage(ms) {
  return new Promise((resolve) => {
    const wake = () => {
      clearTimeout(timer);
      waiters.delete(wake);
      resolve();
    };
    const timer = setTimeout(wake, ms);
    waiters.add(wake);
  });
}

function post(message) {
  try {
    channel.postMessage(message);
  } catch {
    // A closed channel (the page is unloading): the other tabs refresh for themselves.
  }
}

/** Runs while this tab holds the lock: uses a token just handed over, or refreshes and hands it on. */
async function refreshHolding(asked, waited) {
  // The holder posts before it lets the lock go, but the message and the lock grant travel
  // separately: give its message a moment to arrive rather than spend the cookie a second time.
  if (waited && !handedSince(asked)) await nextMessage(HANDOVER_MS);
  const fresh = handedSince(Date.now() - FRESH_MS);
  if (fresh) return fresh;
  let pair;
  try {
    pair = await api('POST', '/refresh', { body: {} });
  } catch (error) {
    post({ type: 'refresh-failed' });
    throw error;
  }
  post({ type: 'refreshed', access_token: pair.access_token, expires_in: pair.expires_in });
  return pair;
}

async function sharedRefresh() {
  const asked = Date.now();
  const pair = await locks.request(LOCK, { ifAvailable: true }, (lock) => (lock ? refreshHolding(asked, false) : null));
  if (pair) return pair;
  // Another tab is refreshing: wait for it, then most likely use what it hands over.
  return locks.request(LOCK, () => refreshHolding(asked, true));
}

/**
 * A fresh `{ access_token, expires_in }` for the session in the refresh cookie. Calls made while
 * one is running share it, in this tab and across tabs. Throws the ApiError of POST /refresh.
 */
export function refresh() {
  refreshing ??= (locks && channel ? sharedRefresh() : api('POST', '/refresh', { body: {} })).finally(() => {
    refreshing = null;
  });
  return refreshing;
}

/**
 * Tells the other tabs this session has ended, so they show it too; `reason` says why
 * ('logged-out', 'password-changed').
 */
export function announceLogout(reason = 'logged-out') {
  handed = null;
  if (channel) post({ type: 'logged-out', reason });
}

/**
 * Calls `listener` with what the other tabs did: `{ type: 'refreshed', access_token, expires_in }`
 * or `{ type: 'logged-out', reason }`. Returns a function that stops it.
 */
export function onSessionChange(listener) {
  listeners.add(listener);
  return () => listeners.delete(listener);
}
