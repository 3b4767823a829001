import type { Response } from 'supertest';
import { loadContract } from '../../src/http/contract';
import { compileSchema, createAjv } from '../../src/http/validation';

const contract = loadContract();
const ajv = createAjv(contract);
const cache = new Map<string, ReturnType<typeof compileSchema>>();

function findOperation(method: string, path: string) {
  const p = path.split('?')[0] as string;
  return contract.operations.find(
    (op) => op.method === method.toLowerCase() && new RegExp(`^${op.path.replace(/\{[^}]+\}/g, '[^/]+')}$`).test(p),
  );
}

function resolve(node: any): any {
  while (node && typeof node === 'object' && typeof node.$ref === 'string') {
    const parts = (node.$ref as string).replace(/^#\//, '').split('/');
    node = parts.reduce((acc: any, k) => acc?.[k], contract.document);
  }
  return node;
}

/**
 * Checks a response against the contract: the status is one the operation declares (exactly, or
 * by its `4XX` range), the content type is the declared one, the body matches its schema, and
 * the declared headers that matter (WWW-Authenticate, Retry-After, Cache-Control) are present.
 * Throws with what is wrong; returns the response for chaining.
 */
export function expectContract(res: Response, method: string, path: string): Response {
  const op = findOperation(method, path);
  if (!op) throw new Error(`No operation in openapi.yaml for ${method} ${path}`);
  const responses = contract.document['paths'][op.path][op.method]['responses'] as Record<string, unknown>;
  const key = String(res.status) in responses ? String(res.status) : `${String(res.status)[0]}XX` in responses ? `${String(res.status)[0]}XX` : undefined;
  if (!key) {
    throw new Error(`${method} ${path} answered ${res.status}, which the contract does not declare (declared: ${Object.keys(responses).join(', ')})\n${res.text}`);
  }
  const declared = resolve(responses[key]);
  for (const [name, header] of Object.entries<any>(declared.headers ?? {})) {
    const h = resolve(header);
    const value = res.headers[name.toLowerCase()];
    if (name === 'Set-Cookie') continue; // optional: not every answer sets the cookie
    if (value === undefined) throw new Error(`${method} ${path} ${res.status}: header ${name} is missing`);
    if (h.schema?.const !== undefined && value !== h.schema.const) throw new Error(`${method} ${path}: header ${name} is "${value}", want "${h.schema.const}"`);
  }
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
