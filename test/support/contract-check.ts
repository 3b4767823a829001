import type { Response } from 'supertest';
import { loadContract } from '../../src/http/contract';
import { compileSchema, createAjv } from '../../src/http/validation';

const contract = loadContract();
const ajv = createAjv(contract);
const cache = new Map<string, ReturnType<typeof compileSchema>>();

function pathMatches(template: string, path: string): boolean {
  return new RegExp(`^${template.replace(/\{[^}]+\}/g, '[^/]+')}$`).test(path.split('?')[0] as string);
}

function findOperation(method: string, path: string) {
  // HEAD is answered by every GET operation, with the same status and headers.
  const m = method.toLowerCase() === 'head' ? 'get' : method.toLowerCase();
  return contract.operations.find((op) => op.method === m && pathMatches(op.path, path));
}

function resolve(node: any): any {
  while (node && typeof node === 'object' && typeof node.$ref === 'string') {
    const parts = (node.$ref as string).replace(/^#\//, '').split('/');
    node = parts.reduce((acc: any, k) => acc?.[k], contract.document);
  }
  return node;
}

/**
 * Checks a response against the contract: the status is one the operation declares (exactly: a
 * range key such as `4XX` is refused, as generated clients cannot type it), the content type is
 * the declared one, the body matches its schema, every header the contract marks `required`
 * (WWW-Authenticate, Retry-After, Cache-Control, Allow) is present and a `const` one has its
 * value. A method the path lacks is checked against the 405 its operations declare; HEAD
 * against the GET operation, without a body. Throws with what is wrong; returns the response
 * for chaining.
 */
export function expectContract(res: Response, method: string, path: string): Response {
  let op = findOperation(method, path);
  if (!op && res.status === 405) op = contract.operations.find((o) => pathMatches(o.path, path));
  if (!op) throw new Error(`No operation in openapi.yaml for ${method} ${path}`);
  const responses = contract.document['paths'][op.path][op.method]['responses'] as Record<string, unknown>;
  const ranges = Object.keys(responses).filter((k) => !/^\d{3}$/.test(k));
  if (ranges.length > 0) throw new Error(`${op.method.toUpperCase()} ${op.path} declares response keys that are not statuses: ${ranges.join(', ')}`);
  const key = String(res.status);
  if (!(key in responses)) {
    throw new Error(
      `${method} ${path} answered ${res.status}, which the contract does not declare (declared: ${Object.keys(responses).join(', ')})\n${res.text}`,
    );
  }
  const declared = resolve(responses[key]);
  for (const [name, header] of Object.entries<any>(declared.headers ?? {})) {
    const h = resolve(header);
    const value = res.headers[name.toLowerCase()];
    if (value === undefined) {
      if (h.required === true) throw new Error(`${method} ${path} ${res.status}: header ${name} is missing`);
      continue;
    }
    if (h.schema?.const !== undefined && value !== h.schema.const) throw new Error(`${method} ${path}: header ${name} is "${value}", want "${h.schema.const}"`);
  }
  if (method.toUpperCase() === 'HEAD') return res;
  const content = declared.content as Record<string, { schema: object }> | undefined;
  if (!content) {
    if (res.text) throw new Error(`${method} ${path} ${res.status}: the contract declares no body, got ${res.text}`);
    return res;
  }
  const [mediaType, media] = Object.entries(content)[0] as [string, { schema: object }];
  const type = String(res.headers['content-type'] ?? '').split(';')[0];
  if (type !== mediaType) throw new Error(`${method} ${path} ${res.status}: content type is ${type}, the contract says ${mediaType}`);
  const cacheKey = `${op.id} ${key}`;
  let validate = cache.get(cacheKey);
  if (!validate) {
    validate = compileSchema(ajv, media.schema as Record<string, unknown>);
    cache.set(cacheKey, validate);
  }
  if (!validate(res.body)) {
    throw new Error(`${method} ${path} ${res.status}: body breaks the contract: ${ajv.errorsText(validate.errors)}\n${res.text}`);
  }
  return res;
}
