// The sign-up page: creates the account with POST /users, logs in with the same name and
// password (which sets the refresh cookie) and goes home.
import { api, busy, clearFieldErrors, hideAlert, setFieldError, showAlert, showFieldErrors } from './api.js';
import { checkAsTyped, passwordProblem } from './password-rule.js';

const form = document.getElementById('signup-form');
const errorBox = document.getElementById('signup-error');

function closed() {
  document.getElementById('signup-closed').hidden = false;
  form.hidden = true;
  hideAlert(errorBox);
}

async function checkOpen() {
  try {
    const info = await api('GET', '/info');
    if (info.signup_enabled !== true) closed();
  } catch {
    // Unknown: leave the form; POST /users answers 403 signup_disabled if it is closed.
  }
}

/** Where each problem code belongs when the server names no field. */
const FIELD_FOR_CODE = { name_taken: 'name', weak_password: 'password' };

const nameInput = form.elements.namedItem('name');
const passwordInput = form.elements.namedItem('password');
const confirmInput = form.elements.namedItem('confirm');

// Told as typed, without a request: too short, too long, or the name (see password-rule.js).
const recheckPassword = checkAsTyped(passwordInput, () => passwordProblem(passwordInput.value, nameInput.value));
nameInput.addEventListener('input', recheckPassword);

form.addEventListener('submit', (event) => {
  event.preventDefault();
  hideAlert(errorBox);
  clearFieldErrors(form);
  if (nameInput.value === '') setFieldError(nameInput, 'Choose a name.');
  const problem = passwordInput.value === '' ? 'Choose a password.' : passwordProblem(passwordInput.value, nameInput.value);
  if (problem) setFieldError(passwordInput, problem);
  if (confirmInput.value !== passwordInput.value) setFieldError(confirmInput, 'The passwords do not match.');
  const invalid = form.querySelector('.is-invalid');
  if (invalid) {
    invalid.focus();
    return;
  }
  const credentials = { name: nameInput.value, password: passwordInput.value };
  busy(form, async () => {
    try {
      await api('POST', '/users', { body: credentials });
    } catch (error) {
      if (error.code === 'signup_disabled') {
        closed();
        return;
      }
      const problem = error.problem || {};
      if (!showFieldErrors(form, problem.errors) && FIELD_FOR_CODE[error.code]) {
        setFieldError(form.elements.namedItem(FIELD_FOR_CODE[error.code]), error.message);
      }
      showAlert(errorBox, error.message);
      return;
    }
    try {
      // The cookie flow: the refresh token stays in the httpOnly cookie, out of this script's reach.
      await api('POST', '/login', { body: { ...credentials, refresh_token_in: 'cookie' } });
    } catch (error) {
      showAlert(errorBox, `Your account was created, but logging in failed: ${error.message}`);
      return;
    }
    window.location.assign('/');
  });
});

checkOpen();
