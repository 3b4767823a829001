import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import type { operations } from '../generated/openapi';

// The contract is read as the parsed YAML it is, of no static type: Redocly and Spectral check
// its shape (npm test), and the generated types type what the handlers see.
/* eslint-disable @typescript-eslint/no-explicit-any, @typescript-eslint/no-unsafe-argument, @typescript-eslint/no-unsafe-assignment, @typescript-eslint/no-unsafe-call, @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-return */

export type OperationId = keyof operations;
export type HttpMethod = 'get' | 'put' | 'post' | 'delete' | 'patch' | 'head' | 'options' | 'trace';

/** JSON Schema, as the contract spells it. */
export type Schema = Record<string, unknown>;

/** One alternative of an OpenAPI `security` list: scheme name -> scopes; `{}` asks for nothing. */
export type SecurityRequirement = Record<string, string[]>;

export type Authentication = 'required' | 'optional' | 'none';

/** OpenAPI 3.1 §4.8.30: the alternatives are ORed, an empty one means no authentication. */
export function authenticationOf(security: readonly SecurityRequirement[]): Authentication {
  const anonymous = security.some((r) => Object.keys(r).length === 0);
  const named = security.some((r) => Object.keys(r).length > 0);
  if (!named) return 'none';
  return anonymous ? 'optional' : 'required';
}

/** One operation of the contract, in the form the router and the validator need. */
export interface Operation {
  id: OperationId;
  method: HttpMethod;
  /** As in the contract: `/sessions/{id}`. */
  path: string;
  /** As @koa/router wants it: `/sessions/:id`. */
  routerPath: string;
  /**
   * What the contract's security asks of a caller: `required` when every alternative names a
   * scheme, `optional` when an empty requirement (`{}`) stands beside one that names a scheme
   * (a token is checked when sent), `none` for `security: []`, no security at all, or only `{}`.
   */
  authentication: Authentication;
  /** True when a request without a token gets through (`authentication` is not `required`). */
  public: boolean;
  /** The security requirements that apply (the operation's, else the document's), as written. */
  security: SecurityRequirement[];
  /** The JSON body schema, when the operation takes a body. */
  body: { required: boolean; schema: Schema } | undefined;
  /** An object schema over the path parameters, when there are any. */
  params: Schema | undefined;
  /** An object schema over the cookie parameters (each optional unless `required`), when there are any. */
  cookies: Schema | undefined;
  /** The query parameters, each with its schema, when there are any. */
  query: { name: string; required: boolean; schema: Schema }[] | undefined;
}

export interface Contract {
  /** The whole document, parsed. */
  document: Record<string, any>;
  /** The document as JSON, rendered once for `GET /openapi.json`. */
  json: string;
  yaml: string;
  operations: Operation[];
}

/** The contract file at the root of the project (the same place from `src/` and `dist/`). */
export const CONTRACT_FILE = path.join(__dirname, '..', '..', 'openapi.yaml');

const METHODS: HttpMethod[] = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options', 'trace'];

/** Follows a local `$ref` (`#/components/parameters/...`) to what it names. */
function resolveLocal(document: Record<string, any>, node: any): any {
  for (let i = 0; i < 8 && node && typeof node.$ref === 'string' && node.$ref.startsWith('#/'); i += 1) {
    node = (node.$ref as string)
      .slice(2)
      .split('/')
      .map((k) => k.replace(/~1/g, '/').replace(/~0/g, '~'))
      .reduce((acc: any, k) => acc?.[k], document);
  }
  return node;
}

/** Reads and indexes the contract. Synchronous: it runs once, at start-up. */
export function loadContract(file = CONTRACT_FILE): Contract {
  return parseContract(fs.readFileSync(file, 'utf8'));
}

/** Indexes a contract given as YAML (or JSON) text. */
export function parseContract(text: string): Contract {
  const document = YAML.parse(text) as Record<string, any>;
  const globalSecurity: SecurityRequirement[] = document['security'] ?? [];
  const operations: Operation[] = [];
  for (const [p, item] of Object.entries<Record<string, any>>(document['paths'] ?? {})) {
    for (const method of METHODS) {
      const op = item[method];
      if (!op) continue;
      const security: SecurityRequirement[] = op.security ?? globalSecurity;
      const authentication = authenticationOf(security);
      const json = op.requestBody?.content?.['application/json'];
      const allParams: any[] = [...(item['parameters'] ?? []), ...(op.parameters ?? [])].map((x: any) => resolveLocal(document, x));
      const pathParams = allParams.filter((x) => x.in === 'path');
      const cookieParams = allParams.filter((x) => x.in === 'cookie');
      const queryParams = allParams.filter((x) => x.in === 'query');
      operations.push({
        id: op.operationId,
        method,
        path: p,
        routerPath: p.replace(/\{([^}]+)\}/g, ':$1'),
        authentication,
        public: authentication !== 'required',
        security,
        body: json ? { required: op.requestBody.required === true, schema: json.schema } : undefined,
        params:
          pathParams.length === 0
            ? undefined
            : {
                type: 'object',
                required: pathParams.map((x: any) => x.name),
                properties: Object.fromEntries(pathParams.map((x: any) => [x.name, x.schema])),
              },
        cookies:
          cookieParams.length === 0
            ? undefined
            : {
                type: 'object',
                required: cookieParams.filter((x) => x.required === true).map((x) => x.name),
                properties: Object.fromEntries(cookieParams.map((x) => [x.name, x.schema])),
              },
        query: queryParams.length === 0 ? undefined : queryParams.map((x: any) => ({ name: x.name, required: x.required === true, schema: x.schema ?? {} })),
      });
    }
  }
  return { document, json: JSON.stringify(document), yaml: text, operations };
}
