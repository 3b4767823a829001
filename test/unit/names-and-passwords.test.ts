import { isAuthError } from '../../src/errors';
import { checkName, nameKey } from '../../src/services/names';
import { checkPasswordPolicy } from '../../src/services/passwords';

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
