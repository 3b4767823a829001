// The password rule the server enforces (NIST SP 800-63B §3.1.1.2): at least 8 characters, at
// most 1024 bytes of UTF-8, not the account's name, and not one of the common passwords. The
// pages tell the first three as the password is typed; the list of common passwords stays on the
// server (sent to every visitor it would outweigh the page), whose 422 is shown under the field.
// The browser test checks these numbers against the server's.
import { clearFieldError, setFieldError } from './api.js';

export const MIN_PASSWORD = 8;
export const MAX_PASSWORD_BYTES = 1024;

const sameText = (a, b) => a.normalize('NFKC').toLowerCase() === b.normalize('NFKC').toLowerCase();

/**
 * What the page can tell of a new password by itself, as a sentence, or '' when it sees nothing
 * wrong. Length counts characters as the server does: code points, not UTF-16 units.
 */
export function passwordProblem(password, name = '') {
  const length = [...password].length;
  if (length < MIN_PASSWORD) return `Use at least ${MIN_PASSWORD} characters (${length} so far).`;
  if (new TextEncoder().encode(password).length > MAX_PASSWORD_BYTES) return `Use a shorter password: at most ${MAX_PASSWORD_BYTES} bytes.`;
  if (name !== '' && sameText(password, name)) return 'Do not use your name as the password.';
  return '';
}

/**
 * Checks `input` as it is typed, with `problemOf()` (a sentence or ''): from the moment the field
 * is first left, or once it is marked, every change shows or clears its message. Returns the
 * check, for the inputs of other fields the problem depends on (the name, the first password).
 */
export function checkAsTyped(input, problemOf) {
  let left = false;
  const check = () => {
    if (input.value === '' && !input.classList.contains('is-invalid')) return;
    const problem = problemOf();
    if (problem) setFieldError(input, problem);
    else clearFieldError(input);
  };
  input.addEventListener('blur', () => {
    left = true;
    check();
  });
  const recheck = () => {
    if (left || input.classList.contains('is-invalid')) check();
  };
  input.addEventListener('input', recheck);
  return recheck;
}
