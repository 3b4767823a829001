// The audit trail's event names in words, for the account page's activity and the admin
// console's audit tab. An event the page does not know yet is shown by its name.

const WORDS = {
  login_succeeded: 'Logged in',
  login_failed: 'Failed login',
  login_limited: 'Login refused: too many tries',
  refresh_token_reused: 'A used refresh token was replayed',
  logout: 'Logged out',
  session_ended: 'Session ended',
  other_sessions_ended: 'Other sessions ended',
  password_changed: 'Password changed',
  password_change_failed: 'Password change failed',
  signup: 'Signed up',
  user_created: 'Account created by an admin',
  role_changed: 'Role changed',
  user_disabled: 'Account disabled',
  user_enabled: 'Account enabled',
  password_set_by_admin: 'Password set by an admin',
  user_deleted: 'Account deleted',
  sessions_ended_by_admin: 'Sessions ended by an admin',
  key_rotated: 'Signing key rotated',
  key_retired: 'Signing key retired',
};

/** The event names, in the order the contract lists them (the audit filter's options). */
export const EVENT_NAMES = Object.keys(WORDS);

export function eventWords(event) {
  return WORDS[event] || event;
}

const when = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
const relative = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });

/** "just now", "5 minutes ago", "yesterday": how long ago `iso` was, in the largest unit that fits. */
export function ago(iso) {
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

export function element(tag, className, text) {
  const el = document.createElement(tag);
  if (className) el.className = className;
  if (text !== undefined) el.textContent = text;
  return el;
}

/** A <time> saying how long ago, with the date and time as its title. */
export function timeElement(iso) {
  const el = element('time', '', ago(iso));
  el.dateTime = iso;
  el.title = when.format(new Date(iso));
  return el;
}

/** The date and time in full, in a <time>. */
export function dateElement(iso) {
  const el = element('time', '', when.format(new Date(iso)));
  el.dateTime = iso;
  return el;
}
