import { AuthError } from '../errors';

export const MIN_PASSWORD_CHARS = 8;
export const MAX_PASSWORD_BYTES = 1024;

/** What the policy may compare a new password with, besides the list of common passwords. */
export interface PasswordContext {
  /** The account's name: a password equal to it (case ignored) is refused. */
  name?: string;
}

let common: ReadonlySet<string> | undefined;

/**
 * The common and breached passwords of zxcvbn-ts's common list (about 49,000, from leaked password
 * sets), lower-cased, keeping only the 17,950 that the length rule lets through. Built on first
 * use (about 55 ms) and kept for the life of the process, as constant data: about 3 MiB of heap,
 * 7 MiB of RSS.
 */
function commonPasswords(): ReadonlySet<string> {
  if (common === undefined) {
    // Loaded here rather than imported at the top: processes that never check a password (the
    // CLI's `list`, most tests) never pay for it.
    const { dictionary } = require('@zxcvbn-ts/language-common') as typeof import('@zxcvbn-ts/language-common');
    common = new Set(dictionary['passwords-common'].filter((p) => [...p].length >= MIN_PASSWORD_CHARS).map((p) => p.toLowerCase()));
  }
  return common;
}

/** Whether the password is in the list of common passwords, case ignored. */
export function isCommonPassword(password: string): boolean {
  return commonPasswords().has(password.toLowerCase());
}

const sameText = (a: string, b: string) => a.normalize('NFKC').toLowerCase() === b.normalize('NFKC').toLowerCase();

/**
 * The password policy, after NIST SP 800-63B §3.1.1.2: at least 8 characters (code points), at
 * most 1024 bytes of UTF-8 (which bounds the hashing cost), no composition rules, and not one of
 * the common or breached passwords nor the account's name. Passwords are never trimmed or
 * otherwise altered. Throws `weak_password` saying why.
 */
export function checkPasswordPolicy(password: string, pointer = '/password', context: PasswordContext = {}): void {
  const refuse = (detail: string, message: string) => new AuthError('weak_password', detail, { errors: [{ pointer, message }] });
  if ([...password].length < MIN_PASSWORD_CHARS) {
    throw refuse(`The password must be at least ${MIN_PASSWORD_CHARS} characters long.`, `must be at least ${MIN_PASSWORD_CHARS} characters`);
  }
  if (Buffer.byteLength(password, 'utf8') > MAX_PASSWORD_BYTES) {
    throw refuse(`The password must be at most ${MAX_PASSWORD_BYTES} bytes long.`, `must be at most ${MAX_PASSWORD_BYTES} bytes`);
  }
  if (isCommonPassword(password)) {
    throw refuse('The password is one of the most common passwords, which are tried first; choose another.', 'is one of the most common passwords');
  }
  if (context.name !== undefined && sameText(password, context.name)) {
    throw refuse('The password must not be the name.', 'must not be the name');
  }
}
