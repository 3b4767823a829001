// The sign-up page: creates the account with POST /users, logs in with the same name and
// password (which sets the refresh cookie) and goes home.
import { api, busy, clearFieldErrors, hideAlert, setFieldError, showAlert, showFieldErrors } from './api.js';

const MIN_PASSWORD = 8;

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

form.addEventListener('submit', (event) => {
  event.preventDefault();
  hideAlert(errorBox);
  clearFieldErrors(form);
  const name = form.elements.namedItem('name');
  const password = form.elements.namedItem('password');
  const confirm = form.elements.namedItem('confirm');
  if (name.value === '') setFieldError(name, 'Choose a name.');
  // Characters as the server counts them (code points), not UTF-16 units.
  if ([...password.value].length < MIN_PASSWORD) setFieldError(password, `Use at least ${MIN_PASSWORD} characters.`);
  if (confirm.value !== password.value) setFieldError(confirm, 'The passwords do not match.');
  const invalid = form.querySelector('.is-invalid');
  if (invalid) {
    invalid.focus();
    return;
  }
  const credentials = { name: name.value, password: password.value };
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
      await api('POST', '/login', { body: credentials });
    } catch (error) {
      showAlert(errorBox, `Your account was created, but logging in failed: ${error.message}`);
      return;
    }
    window.location.assign('/');
  });
});

checkOpen();
