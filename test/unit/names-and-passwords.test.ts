import { isAuthError } from '../../src/errors';
import { checkName, nameKey } from '../../src/services/names';
import { type Argon2, checkPasswordPolicy, createPasswords } from '../../src/services/passwords';

describe('nameKey', () => {
  test.each([
    ['Alice', 'alice'],
    ['ALICE', 'alice'],
    ['Ａｌｉｃｅ', 'alice'],
    ['\u01C4', 'd\u017E'],
  ])('when the name is %s, then it compares as %s', (given, want) => {
    expect(nameKey(given)).toBe(want);
  });
});

describe('checkName', () => {
  test.each([
    ['empty', ''],
    ['65 characters', 'a'.repeat(65)],
    ['a control character', 'bad\u0007name'],
    ['a zero-width character', 'ad\u200Bmin'],
    ['a leading space', ' admin'],
  ])('when the name has %s, then it is refused', (_case, name) => {
    expect(() => checkName(name)).toThrow(expect.objectContaining({ code: 'invalid_request' }));
  });

  test('when the name is ordinary, then it passes', () => {
    expect(() => checkName('Zoë Smith')).not.toThrow();
  });
});

describe('checkPasswordPolicy', () => {
  test.each([
    ['7 characters', 'abcdefg', false],
    ['8 characters', 'abcdefgh', true],
    ['8 emoji (8 characters, 32 bytes)', '😀'.repeat(8), true],
    ['1024 bytes', 'a'.repeat(1024), true],
    ['1025 bytes', 'a'.repeat(1025), false],
    ['only spaces, 8 of them', '        ', true],
  ])('when the password is %s, then ok is %s', (_case, password, ok) => {
    let error: unknown;
    try {
      checkPasswordPolicy(password);
    } catch (e) {
      error = e;
    }
    expect(error === undefined).toBe(ok);
    if (!ok) expect(isAuthError(error, 'weak_password')).toBe(true);
  });
});

describe('createPasswords: hashes at once', () => {
  /** An argon2 stand-in whose calls finish only when the test says so, counting those in flight. */
  function heldArgon2() {
    const pending: Array<() => void> = [];
    const state = { running: 0, most: 0, started: 0 };
    const hold = <T>(value: T) =>
      new Promise<T>((resolve) => {
        state.running += 1;
        state.started += 1;
        state.most = Math.max(state.most, state.running);
        pending.push(() => {
          state.running -= 1;
          resolve(value);
        });
      });
    const impl: Argon2 = {
      hash: (password) => hold(`$argon2id$v=19$m=19456,t=2,p=1$${password}`),
      verify: (hashed, password) => hold(hashed.endsWith(`$${password}`)),
    };
    const turn = () => new Promise((r) => setImmediate(r));
    /** Lets the oldest call finish (waiting a few turns for one to start), then gives the queue a turn. */
    const finishOne = async () => {
      for (let i = 0; pending.length === 0 && i < 20; i += 1) await turn();
      pending.shift()?.();
      await turn();
    };
    return { impl, state, finishOne, pending };
  }
  const params = { memoryCost: 19_456, timeCost: 2, parallelism: 1 };

  test.each([1, 2])('when many hashes and verifications are asked at once with concurrency %i, then no more than that run, and every one finishes', async (concurrency) => {
    const { impl, state, finishOne } = heldArgon2();
    const made = createPasswords({ ...params, concurrency }, impl);
    await finishOne(); // the dummy hash made at creation
    const passwords = await made;
    state.most = 0;
    state.started = 0;
    const hashes = Array.from({ length: 5 }, (_, i) => passwords.hash(`password-${i}`));
    const checks = Array.from({ length: 5 }, (_, i) => passwords.verify(`$argon2id$v=19$m=19456,t=2,p=1$password-${i}`, i % 2 ? `password-${i}` : 'wrong'));
    for (let i = 0; i < 5; i += 1) await new Promise((r) => setImmediate(r));
    expect(state.running).toBe(concurrency);
    for (let i = 0; i < 50 && (state.started < 10 || state.running > 0); i += 1) await finishOne();
    expect([state.started, state.running]).toEqual([10, 0]);
    expect(state.most).toBe(concurrency);
    expect(await Promise.all(hashes)).toEqual(Array.from({ length: 5 }, (_, i) => `$argon2id$v=19$m=19456,t=2,p=1$password-${i}`));
    expect(await Promise.all(checks)).toEqual([false, true, false, true, false]);
  });

  test('when a verification throws (a malformed hash), then it answers false and frees its turn', async () => {
    const { impl, finishOne } = heldArgon2();
    const made = createPasswords({ ...params, concurrency: 1 }, { ...impl, verify: async () => { throw new Error('malformed'); } });
    await finishOne();
    const passwords = await made;
    expect(await passwords.verify('not a hash', 'x')).toBe(false);
    const next = passwords.hash('after');
    await finishOne();
    expect(await next).toMatch(/after$/);
  });
});
