import * as argon2 from '@node-rs/argon2';
import { Semaphore } from 'async-mutex';
import { defaultHashConcurrency } from '../config';
import { AuthError } from '../errors';

// Algorithm is a const enum, which isolated modules cannot read: 2 is Argon2id.
const ARGON2ID = 2 as argon2.Algorithm;

export interface Argon2Params {
  memoryCost: number;
  timeCost: number;
  parallelism: number;
  /**
   * Hashes (or verifications) run at once; the rest wait their turn. Default: one core fewer
   * than the machine has, at least one, so hashing never takes every core from the event loop.
   */
  concurrency?: number;
}

/** The two calls of @node-rs/argon2 this module makes; tests may pass their own. */
export interface Argon2 {
  hash(password: string, options: argon2.Options): Promise<string>;
  verify(hashed: string, password: string): Promise<boolean>;
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

/**
 * argon2id hashing. The work runs on libuv's thread pool, off the event loop, at most
 * `params.concurrency` at once: unbounded, a burst of logins fills the pool (four threads) and
 * both cores with hashing, and every other request waits behind it (bench/NOTES.md). A queued
 * request holds no argon2 memory until its turn.
 */
export async function createPasswords(params: Argon2Params, impl: Argon2 = argon2): Promise<Passwords> {
  const { memoryCost, timeCost, parallelism } = params;
  const options = { algorithm: ARGON2ID, memoryCost, timeCost, parallelism, outputLen: 32 };
  const slots = new Semaphore(params.concurrency ?? defaultHashConcurrency());
  const hash = (password: string) => slots.runExclusive(() => impl.hash(password, options));
  const dummy = await hash('dummy password for unknown names');
  const expected = `$argon2id$v=19$m=${memoryCost},t=${timeCost},p=${parallelism}$`;
  const check = (stored: string, password: string) =>
    slots.runExclusive(async () => {
      try {
        return await impl.verify(stored, password);
      } catch {
        return false;
      }
    });
  return {
    hash,
    verify: check,
    async verifyDummy(password) {
      await check(dummy, password);
    },
    needsRehash: (stored) => !stored.startsWith(expected),
  };
}
