import { loadContract } from '../../src/http/contract';
import { compileSchema, createAjv } from '../../src/http/validation';
import { errorStatus } from '../../src/errors';

const contract = loadContract();
const doc = contract.document;
const ajv = createAjv(contract);

type Node = Record<string, any>;

const escape = (key: string) => key.replace(/~/g, '~0').replace(/\//g, '~1');

function resolve(node: any): any {
  for (let i = 0; i < 8 && node && typeof node.$ref === 'string'; i += 1) {
    node = (node.$ref as string)
      .replace(/^#\//, '')
      .split('/')
      .map((k) => k.replace(/~1/g, '/').replace(/~0/g, '~'))
      .reduce((acc: any, k) => acc?.[k], doc);
  }
  return node;
}

/** One example to check: where it is, the value, and the schema it must meet. */
interface Found {
  at: string;
  value: unknown;
  schema: Node;
}

/**
 * Every example in the document, wherever it stands: `example` and each of `examples` (Example
 * Objects, `$ref`s followed) beside a `schema` (media types, parameters, headers), and the
 * JSON Schema `examples` array (and the older `example`) of a schema itself.
 */
function collectExamples(): Found[] {
  const found: Found[] = [];
  const walk = (node: unknown, at: string) => {
    if (Array.isArray(node)) {
      node.forEach((item, i) => walk(item, `${at}/${i}`));
      return;
    }
    if (!node || typeof node !== 'object') return;
    const n = node as Node;
    if (n['schema'] && typeof n['schema'] === 'object') {
      if ('example' in n) found.push({ at: `${at}/example`, value: n['example'], schema: n['schema'] });
      if (n['examples'] && typeof n['examples'] === 'object' && !Array.isArray(n['examples'])) {
        for (const [name, ex] of Object.entries(n['examples'])) {
          const example = resolve(ex) as Node | undefined;
          if (example && 'value' in example) found.push({ at: `${at}/examples/${escape(name)}`, value: example['value'], schema: n['schema'] });
        }
      }
    } else {
      // A schema: JSON Schema's `examples` is an array (2020-12 §9.5); `example` is OpenAPI's older spelling.
      if (Array.isArray(n['examples'])) n['examples'].forEach((v, i) => found.push({ at: `${at}/examples/${i}`, value: v, schema: n }));
      if ('example' in n && !('value' in n)) found.push({ at: `${at}/example`, value: n['example'], schema: n });
    }
    for (const [key, value] of Object.entries(n)) {
      // The values of examples are data, not more of the document.
      if (key === 'example' || key === 'value' || (key === 'examples' && n['schema'])) continue;
      walk(value, `${at}/${escape(key)}`);
    }
  };
  walk(doc, '#');
  return found;
}

const examples = collectExamples();

describe('every example in openapi.yaml validates against its schema', () => {
  test('when the document is walked, then it finds examples of bodies, parameters, headers and schemas', () => {
    const where = examples.map((e) => e.at);
    expect(where.length).toBeGreaterThan(50);
    for (const part of ['/requestBody/', '/responses/', '/parameters/', '/headers/', '#/components/schemas/']) {
      expect(where.some((at) => at.includes(part))).toBe(true);
    }
  });

  test.each(examples.map((e) => [e.at, e] as const))('when the example at %s is checked, then it meets its schema', (_at, e) => {
    const validate = compileSchema(ajv, e.schema);
    const ok = validate(e.value);
    if (!ok) throw new Error(`The example at ${e.at} breaks its schema: ${ajv.errorsText(validate.errors)}\n${JSON.stringify(e.value)}`);
  });
});

/** Each operation's responses, by status, with the response object resolved. */
function operationResponses(): { op: string; status: string; response: Node }[] {
  const out: { op: string; status: string; response: Node }[] = [];
  for (const op of contract.operations) {
    const responses = doc['paths'][op.path][op.method]['responses'] as Node;
    for (const [status, response] of Object.entries(responses)) out.push({ op: `${op.method.toUpperCase()} ${op.path}`, status, response: resolve(response) });
  }
  return out;
}

/** The example values of a media type or parameter (`example`, and each of `examples`). */
function exampleValues(media: Node): unknown[] {
  const values: unknown[] = [];
  if ('example' in media) values.push(media['example']);
  for (const ex of Object.values<unknown>(media['examples'] ?? {})) {
    const example = resolve(ex) as Node | undefined;
    if (example && 'value' in example) values.push(example['value']);
  }
  return values;
}

describe('the examples are where a reader and a contract-testing tool need them', () => {
  test('when an operation takes a body or a parameter, then each has an example', () => {
    const missing: string[] = [];
    for (const op of contract.operations) {
      const o = doc['paths'][op.path][op.method] as Node;
      const name = `${op.method.toUpperCase()} ${op.path}`;
      for (const [type, media] of Object.entries<Node>(resolve(o['requestBody'])?.['content'] ?? {})) {
        if (exampleValues(media).length === 0) missing.push(`${name} request body ${type}`);
      }
      for (const p of [...(doc['paths'][op.path]['parameters'] ?? []), ...(o['parameters'] ?? [])].map(resolve)) {
        if (exampleValues(p).length === 0) missing.push(`${name} parameter ${p.name}`);
      }
    }
    expect(missing).toEqual([]);
  });

  test('when a response has a body or headers, then each has an example', () => {
    const missing: string[] = [];
    for (const { op, status, response } of operationResponses()) {
      for (const [type, media] of Object.entries<Node>(response['content'] ?? {})) {
        if (exampleValues(media).length === 0) missing.push(`${op} ${status} ${type}`);
      }
      for (const [name, header] of Object.entries<Node>(response['headers'] ?? {})) {
        if (exampleValues(resolve(header)).length === 0) missing.push(`${op} ${status} header ${name}`);
      }
    }
    expect(missing).toEqual([]);
  });

  test('when a problem response has examples, then each shows that status and a type naming its code', () => {
    const wrong: string[] = [];
    for (const { op, status, response } of operationResponses()) {
      const media = response['content']?.['application/problem+json'] as Node | undefined;
      if (!media) continue;
      for (const value of exampleValues(media) as Node[]) {
        if (value['status'] !== Number(status)) wrong.push(`${op} ${status}: an example says status ${value['status']}`);
        const type = value['code'] === undefined ? 'about:blank' : `urn:problem-type:${value['code']}`;
        if (value['type'] !== type) wrong.push(`${op} ${status}: an example's type is ${value['type']}, want ${type}`);
        if (value['code'] !== undefined && errorStatus[value['code'] as keyof typeof errorStatus] !== Number(status)) {
          wrong.push(`${op} ${status}: an example's code ${value['code']} is answered with ${errorStatus[value['code'] as keyof typeof errorStatus]}`);
        }
      }
    }
    expect(wrong).toEqual([]);
  });
});

describe("the problem codes of the contract are the server's", () => {
  test('when Problem.code is read, then its enum lists exactly the codes of src/errors.ts', () => {
    const listed = doc['components']['schemas']['Problem']['properties']['code']['enum'] as string[];
    expect([...listed].sort()).toEqual(Object.keys(errorStatus).sort());
  });

  test('when Problem.code is read, then its description names each code with its status', () => {
    const description = doc['components']['schemas']['Problem']['properties']['code']['description'] as string;
    const unnamed = Object.keys(errorStatus).filter((code) => !description.includes(`\`${code}\``));
    expect(unnamed).toEqual([]);
  });
});
