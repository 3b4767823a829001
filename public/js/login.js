// The login page: posts the name and password as JSON and goes home. It asks for the cookie
// flow, so the answer holds no refresh token; its access token is dropped on purpose: the
// httpOnly refresh cookie the server set is all the home page needs.
import { api, busy, clearFieldErrors, hideAlert, setFieldError, showAlert, showFieldErrors } from './api.js';

const form = document.getElementById('login-form');
const errorBox = document.getElementById('login-error');

/**
 * Why the pages sent the person here (`/login?reason=...`): said once, above the form. The
 * reason is only a key into this table, never shown as given.
 */
const REASONS = {
  'logged-out': ['success', 'You have been logged out.'],
  'session-ended': ['warning', 'Your session has ended. Log in again to go on.'],
  'password-changed': ['success', 'Your password was changed and all your sessions have ended. Log in with the new password.'],
};

function showReason() {
  const url = new URL(window.location.href);
  const reason = REASONS[url.searchParams.get('reason')];
  if (!reason) return;
  showAlert(document.getElementById('login-notice'), reason[1], reason[0]);
  // A reload, or a bookmark of this address, should not say it again.
  url.searchParams.delete('reason');
  window.history.replaceState(null, '', `${url.pathname}${url.search}${url.hash}`);
}

async function showSignupLink() {
  try {
    const info = await api('GET', '/info');
    document.getElementById('signup-prompt').hidden = info.signup_enabled !== true;
  } catch {
    // Without /info the link stays hidden: logging in still works.
  }
}

form.addEventListener('submit', (event) => {
  event.preventDefault();
  hideAlert(errorBox);
  clearFieldErrors(form);
  const name = form.elements.namedItem('name');
  const password = form.elements.namedItem('password');
  // Names and passwords go as typed: the server never trims or alters a password.
  let missing = false;
  if (name.value === '') {
    setFieldError(name, 'Enter your name.');
    missing = true;
  }
  if (password.value === '') {
    setFieldError(password, 'Enter your password.');
    missing = true;
  }
  if (missing) {
    form.querySelector('.is-invalid').focus();
    return;
  }
  hideAlert(document.getElementById('login-notice'));
  busy(form, async () => {
    try {
      await api('POST', '/login', { body: { name: name.value, password: password.value, refresh_token_in: 'cookie' } });
    } catch (error) {
      showFieldErrors(form, error.problem && error.problem.errors);
      showAlert(errorBox, error.message);
      password.value = '';
      password.focus();
      return;
    }
    window.location.assign('/');
  });
});

showReason();
showSignupLink();
