import fc from 'fast-check';

/** A JSON Schema node as the contract spells it. */
type Node = Record<string, any>;

/**
 * `arbitrary.filter(keep)`, but one that gives up: fast-check retries a filter synchronously for
 * as long as it takes, so a schema that leaves nothing to keep (a contract edited under the test)
 * would hang the test where no timeout can reach it. After `tries` refusals in a row it throws,
 * naming `what`.
 */
export function keepOnly<T>(arbitrary: fc.Arbitrary<T>, keep: (value: T) => boolean, what: string, tries = 2_000): fc.Arbitrary<T> {
  let refused = 0;
  return arbitrary.filter((value) => {
    if (keep(value)) {
      refused = 0;
      return true;
    }
    refused += 1;
    if (refused >= tries) throw new Error(`no value for "${what}" in ${tries} tries: does the schema leave any?`);
    return false;
  });
}

/** Which characters a generated string may hold: anything, or what a header or cookie can carry. */
export type Charset = 'json' | 'header' | 'cookie';

/** Follows `$ref`s (`#/...` only) until a schema that is not a reference. */
export function resolveRef(document: Node, node: unknown): Node {
  let current = node as Node;
  for (let hops = 0; current && typeof current === 'object' && typeof current['$ref'] === 'string'; hops++) {
    if (hops > 32) throw new Error(`$ref loop at ${String(current['$ref'])}`);
    const parts = current['$ref']
      .replace(/^#\//, '')
      .split('/')
      .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
    current = parts.reduce<any>((acc, k) => acc?.[k], document);
    if (current === undefined) throw new Error(`unresolvable $ref ${String((node as Node)['$ref'])}`);
  }
  return current;
}

/** `allOf` folded into one schema (properties and required merged): enough for object compositions. */
function flatten(document: Node, node: unknown): Node {
  const s = resolveRef(document, node);
  if (!Array.isArray(s['allOf'])) return s;
  const merged: Node = { ...s, allOf: undefined };
  for (const part of (s['allOf'] as unknown[]).map((p) => flatten(document, p))) {
    for (const [k, v] of Object.entries(part)) {
      if (k === 'properties') merged['properties'] = { ...(merged['properties'] ?? {}), ...(v as Node) };
      else if (k === 'required') merged['required'] = [...new Set([...(merged['required'] ?? []), ...(v as string[])])];
      else if (merged[k] === undefined) merged[k] = v;
    }
  }
  return merged;
}

const PRINTABLE = Array.from({ length: 0x7f - 0x20 }, (_, i) => String.fromCharCode(0x20 + i));
// RFC 6265 §4.1.1 cookie-octet: no space, DQUOTE, comma, semicolon or backslash.
const COOKIE_OCTETS = PRINTABLE.filter((c) => !' ",;\\'.includes(c));
// A header value: printable ASCII without outer spaces (Node trims them).
const HEADER_CHARS = PRINTABLE.filter((c) => c !== ' ');

/** One character: mostly printable ASCII, sometimes any code point (JSON only). */
function unit(charset: Charset): fc.Arbitrary<string> {
  if (charset === 'cookie') return fc.constantFrom(...COOKIE_OCTETS);
  if (charset === 'header') return fc.constantFrom(...HEADER_CHARS);
  return fc.oneof(
    { weight: 8, arbitrary: fc.constantFrom(...PRINTABLE) },
    // One code point each, so lengths agree with JSON Schema's, which counts code points.
    { weight: 2, arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }) },
  );
}

/** A string of `min`..`max` code points, with the bounds themselves drawn now and then. */
export function stringOf(min: number, max: number | undefined, charset: Charset = 'json'): fc.Arbitrary<string> {
  const top = max ?? min + 40;
  const chars = unit(charset);
  const anyLength = fc.string({ unit: chars, minLength: min, maxLength: top });
  return fc.oneof(
    { weight: 8, arbitrary: anyLength },
    { weight: 1, arbitrary: fc.string({ unit: chars, minLength: min, maxLength: min }) },
    { weight: 1, arbitrary: fc.string({ unit: chars, minLength: top, maxLength: top }) },
  );
}

function formatted(format: string): fc.Arbitrary<string> | undefined {
  switch (format) {
    case 'date-time':
      return fc.date({ min: new Date('1970-01-01T00:00:00Z'), max: new Date('2100-01-01T00:00:00Z'), noInvalidDate: true }).map((d) => d.toISOString());
    case 'date':
      return fc
        .date({ min: new Date('1970-01-01T00:00:00Z'), max: new Date('2100-01-01T00:00:00Z'), noInvalidDate: true })
        .map((d) => d.toISOString().slice(0, 10));
    case 'email':
      return fc.emailAddress();
    case 'uri':
    case 'url':
      return fc.webUrl();
    case 'uuid':
      return fc.uuid();
    default:
      return undefined;
  }
}

function stringFor(s: Node, charset: Charset): fc.Arbitrary<string> {
  const min = typeof s['minLength'] === 'number' ? s['minLength'] : 0;
  const max = typeof s['maxLength'] === 'number' ? s['maxLength'] : undefined;
  const withinLength = (v: string) => [...v].length >= min && (max === undefined || [...v].length <= max);
  if (typeof s['pattern'] === 'string')
    return keepOnly(fc.stringMatching(new RegExp(s['pattern'], 'u')), withinLength, `a string matching ${String(s['pattern'])}`);
  const byFormat = typeof s['format'] === 'string' ? formatted(s['format']) : undefined;
  if (byFormat) return keepOnly(byFormat, withinLength, `a ${String(s['format'])} string`);
  return stringOf(min, max, charset);
}

/**
 * Values valid against a JSON Schema (2020-12 as OpenAPI 3.1 uses it): `$ref`, `allOf`,
 * `oneOf`/`anyOf`, `const`, `enum`, type lists, string lengths, patterns and formats, number
 * bounds, arrays and objects (optional properties now present, now absent). Only the keywords the
 * contract uses need to be exact; the caller checks each value with ajv all the same.
 */
export function valid(document: Node, schema: unknown, charset: Charset = 'json', depth = 0): fc.Arbitrary<unknown> {
  const s = flatten(document, schema);
  if (s['const'] !== undefined) return fc.constant(s['const']);
  if (Array.isArray(s['enum'])) return fc.constantFrom(...(s['enum'] as unknown[]));
  for (const key of ['oneOf', 'anyOf']) {
    if (Array.isArray(s[key])) return fc.oneof(...(s[key] as unknown[]).map((p) => valid(document, p, charset, depth + 1)));
  }
  const type = s['type'] ?? (s['properties'] ? 'object' : s['items'] ? 'array' : undefined);
  if (Array.isArray(type)) return fc.oneof(...(type as string[]).map((t) => valid(document, { ...s, type: t }, charset, depth + 1)));
  switch (type) {
    case 'string':
      return stringFor(s, charset);
    case 'integer': {
      const min = s['exclusiveMinimum'] !== undefined ? Number(s['exclusiveMinimum']) + 1 : (s['minimum'] ?? -(2 ** 31));
      const max = s['exclusiveMaximum'] !== undefined ? Number(s['exclusiveMaximum']) - 1 : (s['maximum'] ?? 2 ** 31);
      return fc.integer({ min, max });
    }
    case 'number':
      return fc.double({ min: s['minimum'] ?? -1e9, max: s['maximum'] ?? 1e9, noNaN: true, noDefaultInfinity: true });
    case 'boolean':
      return fc.boolean();
    case 'null':
      return fc.constant(null);
    case 'array':
      return fc.array(s['items'] ? valid(document, s['items'], charset, depth + 1) : fc.jsonValue({ maxDepth: 1 }), {
        minLength: s['minItems'] ?? 0,
        maxLength: Math.min(s['maxItems'] ?? 4, (s['minItems'] ?? 0) + 4),
      });
    case 'object': {
      const properties = (s['properties'] ?? {}) as Node;
      const required = new Set<string>(s['required'] ?? []);
      const record = fc.record(Object.fromEntries(Object.entries(properties).map(([k, v]) => [k, valid(document, v, charset, depth + 1)])), {
        requiredKeys: [...required].filter((k) => k in properties),
      });
      const extra = s['additionalProperties'];
      if (extra && typeof extra === 'object' && depth < 3) {
        return fc
          .tuple(
            record,
            fc.dictionary(fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 12 }), valid(document, extra, charset, depth + 1), { maxKeys: 3 }),
          )
          .map(([known, more]) => ({ ...more, ...known }));
      }
      return record;
    }
    default:
      return fc.jsonValue({ maxDepth: 2 });
  }
}

/** A labelled way to break a value. */
export interface Mutation<T> {
  label: string;
  arbitrary: fc.Arbitrary<T>;
}

/** One value of each JSON type, for "wrong type" (the caller keeps those its schema refuses). */
export const ONE_OF_EACH_TYPE: readonly unknown[] = ['a string', 12345, 1.5, true, null, [], { a: 1 }];

/**
 * Ways to make a value of `schema` invalid, each labelled: a wrong type, a string one past its
 * maximum length (up to 64 past) or short of its minimum, a value outside its enum, a string
 * against its pattern. `isValid` is the schema's compiled validator; every candidate it would
 * accept is dropped, so each mutation is invalid for sure.
 */
export function invalidScalars(document: Node, schema: unknown, isValid: (value: unknown) => boolean, charset: Charset = 'json'): Mutation<unknown>[] {
  const s = flatten(document, schema);
  const out: Mutation<unknown>[] = [];
  const wrongTypes = ONE_OF_EACH_TYPE.filter((v) => !isValid(v));
  if (wrongTypes.length > 0) out.push({ label: 'wrong type', arbitrary: fc.constantFrom(...wrongTypes) });
  if (typeof s['maxLength'] === 'number') {
    const max = s['maxLength'];
    out.push({ label: 'too long', arbitrary: keepOnly(stringOf(max + 1, max + 64, charset === 'json' ? 'header' : charset), (v) => !isValid(v), 'too long') });
  }
  if (typeof s['minLength'] === 'number' && s['minLength'] > 0) {
    out.push({
      label: 'too short',
      arbitrary: keepOnly(stringOf(0, s['minLength'] - 1, charset === 'json' ? 'header' : charset), (v) => !isValid(v), 'too short'),
    });
  }
  if (Array.isArray(s['enum']) || s['const'] !== undefined) {
    out.push({ label: 'outside its enum', arbitrary: keepOnly(stringOf(0, 12, 'cookie'), (v) => !isValid(v), 'outside its enum') });
  }
  if (typeof s['pattern'] === 'string') {
    // Characters outside the pattern's class, within the length the pattern allows.
    out.push({ label: 'against its pattern', arbitrary: keepOnly(stringOf(1, 16, 'header'), (v) => !isValid(v), 'against its pattern') });
  }
  return out;
}

/**
 * Ways to make an object of `schema` invalid, each labelled with the property it breaks: a
 * required property left out, a property the schema does not know (when it forbids them), each
 * property broken as {@link invalidScalars} does, and the whole body of another JSON type.
 */
export function invalidObjects(document: Node, schema: unknown, compile: (schema: unknown) => (value: unknown) => boolean): Mutation<unknown>[] {
  const s = flatten(document, schema);
  const isValid = compile(schema);
  const out: Mutation<unknown>[] = [];
  const base = valid(document, s) as fc.Arbitrary<Record<string, unknown>>;
  const properties = (s['properties'] ?? {}) as Node;
  for (const name of (s['required'] ?? []) as string[]) {
    out.push({ label: `missing required ${name}`, arbitrary: base.map((v) => Object.fromEntries(Object.entries(v).filter(([k]) => k !== name))) });
  }
  if (s['additionalProperties'] === false) {
    const extraKey = keepOnly(
      fc.oneof(fc.constantFrom('role', 'is_admin', 'id', 'extra'), fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 12 })),
      (k) => !(k in properties) && k !== '__proto__',
      'an unknown property name',
    );
    out.push({
      label: 'extra property',
      arbitrary: fc.tuple(base, extraKey, fc.jsonValue({ maxDepth: 1 })).map(([v, k, x]) => ({ ...v, [k]: x })),
    });
  }
  for (const [name, propSchema] of Object.entries(properties)) {
    const check = compile(propSchema);
    for (const m of invalidScalars(document, propSchema, check)) {
      out.push({ label: `${name} ${m.label}`, arbitrary: fc.tuple(base, m.arbitrary).map(([v, bad]) => ({ ...v, [name]: bad })) });
    }
  }
  const otherRoots = ONE_OF_EACH_TYPE.filter((v) => !isValid(v));
  if (otherRoots.length > 0) out.push({ label: 'body of a wrong type', arbitrary: fc.constantFrom(...otherRoots) });
  return out;
}
