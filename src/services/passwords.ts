import * as argon2 from '@node-rs/argon2';
import { defaultHashConcurrency } from '../config';
import { createHashQueue, type HashQueue } from './hash-queue';

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
  /** Hashes running or waiting at once, from all clients; past it, 503 at once. Default 64. */
  queueLimit?: number;
  /** Hashes running or waiting at once for one client; past it, 429 at once. Default 4. */
  clientLimit?: number;
}

/** The two calls of @node-rs/argon2 this module makes; tests may pass their own. */
export interface Argon2 {
  hash(password: string, options: argon2.Options): Promise<string>;
  verify(hashed: string, password: string): Promise<boolean>;
}

// The policy lives in its own module; re-exported here for the callers that import it from here.
export { checkPasswordPolicy, MAX_PASSWORD_BYTES, MIN_PASSWORD_CHARS, type PasswordContext } from './password-policy';

/**
 * Hashing and checking passwords. `client` (the client's address) shares the hashing fairly:
 * each client waits behind its own requests (see {@link HashQueue}); a client over its share,
 * or a full queue, is refused at once (`rate_limited` 429, `server_busy` 503).
 */
export interface Passwords {
  hash(password: string, client?: string): Promise<string>;
  /** Whether `password` matches `hash`; false for a malformed hash. */
  verify(hash: string, password: string, client?: string): Promise<boolean>;
  /** Spends the same time as a real verify, for names that do not exist. */
  verifyDummy(password: string, client?: string): Promise<void>;
  /** Whether `hash` was made with other parameters than the current ones. */
  needsRehash(hash: string): boolean;
  /** The hash queue's length, for the metrics; left out by test doubles. */
  readonly queue?: { readonly waiting: number; readonly running: number };
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
  const queue: HashQueue = createHashQueue({
    concurrency: params.concurrency ?? defaultHashConcurrency(),
    maxQueued: params.queueLimit ?? 64,
    perClient: params.clientLimit ?? 4,
  });
  const hash = (password: string, client?: string) => queue.run(client, () => impl.hash(password, options));
  const dummy = await hash('dummy password for unknown names');
  const expected = `$argon2id$v=19$m=${memoryCost},t=${timeCost},p=${parallelism}$`;
  const check = (stored: string, password: string, client?: string) =>
    queue.run(client, async () => {
      try {
        return await impl.verify(stored, password);
      } catch {
        return false;
      }
    });
  return {
    hash,
    verify: check,
    async verifyDummy(password, client) {
      await check(dummy, password, client);
    },
    needsRehash: (stored) => !stored.startsWith(expected),
    queue,
  };
}
