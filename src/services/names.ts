import { AuthError } from '../errors';

/**
 * The form in which names are compared: Unicode NFKC, case-folded. "Ａdmin", "ADMIN" and "admin"
 * are one name.
 */
export function nameKey(name: string): string {
  return name.normalize('NFKC').toLowerCase().normalize('NFKC');
}

/** A name is kept as typed, but must be 1-64 characters with no control characters or outer spaces. */
export function checkName(name: string, pointer = '/name'): void {
  const problem = (message: string) =>
    new AuthError('invalid_request', `The name ${message}.`, { errors: [{ pointer, message }] });
  const chars = [...name.normalize('NFKC')];
  if (chars.length < 1 || chars.length > 64) throw problem('must be 1 to 64 characters');
  if (/\p{C}/u.test(name)) throw problem('must not contain control or invisible characters');
  if (name.trim() !== name) throw problem('must not start or end with spaces');
}
