import { isAuthError } from '../../src/errors';
import { checkName, mixedScripts, nameKey, nameSkeleton } from '../../src/services/names';
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

  test.each([
    ['a Cyrillic а among Latin letters', { given: '\u0430dmin', want: 'Cyrillic and Latin' }],
    ['a Cyrillic о among Latin letters', { given: 'r\u043Eot', want: 'Latin and Cyrillic' }],
    ['a Greek omega before Latin letters', { given: '\u03A9mega', want: 'Greek and Latin' }],
    ['a Cyrillic first name and a Latin last name', { given: 'Иван Smith', want: 'Cyrillic and Latin' }],
  ])('when the name mixes scripts (%s), then it is refused naming them', (_case, { given, want }) => {
    expect(() => checkName(given)).toThrow(
      expect.objectContaining({ code: 'invalid_request', message: `The name must use the letters of one script, not mix ${want}.` }),
    );
  });

  test.each([
    ['Latin with accents, a space and an apostrophe', 'Zoë O’Brien'],
    ['Latin with digits and punctuation', 'user_1-2.x'],
    ['Cyrillic', 'Иван Петров'],
    ['Greek', 'Ελένη'],
    ['Japanese: Han with Hiragana', '山田たろう'],
    ['Japanese: Katakana with the long-vowel mark', 'スズキー'],
    ['Korean: Hangul with Han', '김哲洙'],
    ['Devanagari with its vowel signs', 'मीना'],
    ['fullwidth Latin', 'Ａｌｉｃｅ'],
    ['emoji and Latin', 'alice 🙂'],
  ])('when the name is of one script (%s), then it passes', (_case, name) => {
    expect(mixedScripts(name)).toEqual([]);
    expect(() => checkName(name)).not.toThrow();
  });
});

describe('nameSkeleton', () => {
  test.each<[string, { given: [string, string]; same: boolean }]>([
    ['a Cyrillic а for a Latin a', { given: ['\u0430dmin', 'admin'], same: true }],
    ['capital Cyrillic letters', { given: ['\u0410DMIN', 'admin'], same: true }],
    ['all-Cyrillic look-alikes (whole-script confusable)', { given: ['\u0430\u0455\u0455', 'ass'], same: true }],
    ['a Greek omicron for an o', { given: ['b\u03BFb', 'bob'], same: true }],
    ['"rn" for "m"', { given: ['adrnin', 'admin'], same: true }],
    ['a digit 0 for an o', { given: ['b0b', 'BOB'], same: true }],
    ['fullwidth letters', { given: ['ａｄｍｉｎ', 'admin'], same: true }],
    ['an acute accent (a diacritic)', { given: ['Admiń', 'admin'], same: true }],
    ['a combining diaeresis or a precomposed one', { given: ['Zoe\u0308', 'zoe'], same: true }],
    ['a zero-width joiner inside', { given: ['ad\u200Dmin', 'admin'], same: true }],
    ['one more letter', { given: ['admins', 'admin'], same: false }],
    ['different Devanagari vowel signs', { given: ['मीना', 'मना'], same: false }],
    ['Han characters in another order', { given: ['山田', '田山'], same: false }],
  ])('when two names differ by %s, then their skeletons are equal or not as given', (_case, { given: [a, b], same }) => {
    expect(nameSkeleton(a) === nameSkeleton(b)).toBe(same);
  });

  test('when a name is 64 of the longest-mapping characters, then its skeleton fits the column (512)', () => {
    expect([...nameSkeleton('\uAF66'.repeat(64))].length).toBeLessThanOrEqual(512);
    expect([...nameSkeleton('\u2474'.repeat(64))].length).toBeLessThanOrEqual(512);
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

  const COMMON = 'is one of the most common passwords';
  test.each<[string, { given: string; name?: string; want: string | undefined }]>([
    ['a common password', { given: 'password1', want: COMMON }],
    ['a common password in other case', { given: 'PassWord1', want: COMMON }],
    ['a common keyboard walk', { given: 'qwertyuiop', want: COMMON }],
    ['a common password with a digit swap', { given: 'passw0rd', want: COMMON }],
    ['the name', { given: 'alice-smith', name: 'alice-smith', want: 'must not be the name' }],
    ['the name in other case and width', { given: 'ALICE-SMITH', name: 'ａｌｉｃｅ-smith', want: 'must not be the name' }],
    ['long, uncommon and not the name', { given: 'correct horse battery staple', name: 'alice', want: undefined }],
    ['uncommon, with composition rules unmet', { given: 'abcdefgh', want: undefined }],
  ])('when the password is %s, then it is refused saying why, or accepted, as given', (_case, { given, name, want }) => {
    let error: unknown;
    try {
      checkPasswordPolicy(given, '/body/password', name === undefined ? {} : { name });
    } catch (e) {
      error = e;
    }
    if (want === undefined) return expect(error).toBeUndefined();
    expect(isAuthError(error, 'weak_password')).toBe(true);
    expect((error as { errors?: unknown }).errors).toEqual([{ pointer: '/body/password', message: want }]);
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

  test.each([1, 2])(
    'when many hashes and verifications are asked at once with concurrency %i, then no more than that run, and every one finishes',
    async (concurrency) => {
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
    },
  );

  test('when a verification throws (a malformed hash), then it answers false and frees its turn', async () => {
    const { impl, finishOne } = heldArgon2();
    const made = createPasswords(
      { ...params, concurrency: 1 },
      {
        ...impl,
        verify: async () => {
          throw new Error('malformed');
        },
      },
    );
    await finishOne();
    const passwords = await made;
    expect(await passwords.verify('not a hash', 'x')).toBe(false);
    const next = passwords.hash('after');
    await finishOne();
    expect(await next).toMatch(/after$/);
  });
});
