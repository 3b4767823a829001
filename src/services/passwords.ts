import { type Algorithm, hash, verify } from '@node-rs/argon2';

// Algorithm is a const enum, which isolated modules cannot read: 2 is Argon2id.
const ARGON2ID = 2 as Algorithm;
import { AuthError } from '../errors';

export interface Argon2Params {
  memoryCost: number;
  timeCost: number;
  parallelism: number;
}

export const MIN_PASSWORD_CHARS = 8;
export const MAX_PASSWORD_BYTES = 1024;

export interface Passwords {
  hash(password: string): Promise<string>;
  /** Whether `password` matches `hash`; false for a malformed hash. */
  verify(hash: string, password: string): Promise<boolean>;
  /** Spends the same time as a real verify, for names that do not exist. */
  verifyDummy(password: string): Promise<void>;
  /** Whether `hash` was made with other parameters than the current ones. */
  needsRehash(hash: string): boolean;
}

/**
 * The password policy: at least 8 characters (code points) and at most 1024 bytes of UTF-8,
 * which bounds the hashing cost. Passwords are never trimmed or otherwise altered.
 */
export function checkPasswordPolicy(password: string, pointer = '/password'): void {
  if ([...password].length < MIN_PASSWORD_CHARS) {
    throw new AuthError('weak_password', `The password must be at least ${MIN_PASSWORD_CHARS} characters long.`, {
      errors: [{ pointer, message: `must be at least ${MIN_PASSWORD_CHARS} characters` }],
    });
  }
  if (Buffer.byteLength(password, 'utf8') > MAX_PASSWORD_BYTES) {
    throw new AuthError('weak_password', `The password must be at most ${MAX_PASSWORD_BYTES} bytes long.`, {
      errors: [{ pointer, message: `must be at most ${MAX_PASSWORD_BYTES} bytes` }],
    });
  }
}

/** argon2id hashing; the work runs on libuv's thread pool, off the event loop. */
export async function createPasswords(params: Argon2Params): Promise<Passwords> {
  const options = { algorithm: ARGON2ID, ...params, outputLen: 32 };
  const dummy = await hash('dummy password for unknown names', options);
  const expected = `$argon2id$v=19$m=${params.memoryCost},t=${params.timeCost},p=${params.parallelism}$`;
  const check = async (stored: string, password: string) => {
    try {
      return await verify(stored, password);
    } catch {
      return false;
    }
  };
  return {
    hash: (password) => hash(password, options),
    verify: check,
    async verifyDummy(password) {
      await check(dummy, password);
    },
    needsRehash: (stored) => !stored.startsWith(expected),
  };
}
