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

const nameInput = form.elements.namedItem('name');
const passwordInput = form.elements.namedItem('password');

/**
 * What the page can tell of the password by itself: its length (in characters as the server
 * counts them, code points, not UTF-16 units) and whether it is the name. Whether it is one of
 * the common passwords only the server knows (the list is too big to send); its 422 is shown
 * against this field like these.
 */
function passwordProblem(password, name) {
  const length = [...password].length;
  if (length < MIN_PASSWORD) return `Use at least ${MIN_PASSWORD} characters (${length} so far).`;
  const same = (a) => a.normalize('NFKC').toLowerCase();
  if (name !== '' && same(password) === same(name)) return 'Do not use your name as the password.';
  return '';
}

function clearFieldError(input) {
  input.classList.remove('is-invalid');
  input.removeAttribute('aria-invalid');
  const feedback = document.getElementById(`${input.id}-feedback`);
  if (feedback) feedback.textContent = '';
}

/** Checks the password as it is typed: once the field was left, or is marked, every change shows. */
function checkPasswordNow() {
  if (passwordInput.value === '' && !passwordInput.classList.contains('is-invalid')) return;
  const problem = passwordProblem(passwordInput.value, nameInput.value);
  if (problem) setFieldError(passwordInput, problem);
  else clearFieldError(passwordInput);
}

let passwordLeft = false;
passwordInput.addEventListener('blur', () => {
  passwordLeft = true;
  checkPasswordNow();
});
for (const input of [passwordInput, nameInput]) {
  input.addEventListener('input', () => {
    if (passwordLeft || passwordInput.classList.contains('is-invalid')) checkPasswordNow();
  });
}

form.addEventListener('submit', (event) => {
  event.preventDefault();
  hideAlert(errorBox);
  clearFieldErrors(form);
  const name = nameInput;
  const password = passwordInput;
  const confirm = form.elements.namedItem('confirm');
  if (name.value === '') setFieldError(name, 'Choose a name.');
  const problem = passwordProblem(password.value, name.value);
  if (problem) setFieldError(password, problem);
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
