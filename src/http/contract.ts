import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import type { operations } from '../generated/openapi';

export type OperationId = keyof operations;
export type HttpMethod = 'get' | 'put' | 'post' | 'delete' | 'patch' | 'head' | 'options' | 'trace';

/** JSON Schema, as the contract spells it. */
export type Schema = Record<string, unknown>;

/** One operation of the contract, in the form the router and the validator need. */
export interface Operation {
  id: OperationId;
  method: HttpMethod;
  /** As in the contract: `/sessions/{id}`. */
  path: string;
  /** As @koa/router wants it: `/sessions/:id`. */
  routerPath: string;
  /** True when the operation says `security: []`. */
  public: boolean;
  /** The JSON body schema, when the operation takes a body. */
  body: { required: boolean; schema: Schema } | undefined;
  /** An object schema over the path parameters, when there are any. */
  params: Schema | undefined;
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

/** Reads and indexes the contract. Synchronous: it runs once, at start-up. */
export function loadContract(file = CONTRACT_FILE): Contract {
  const text = fs.readFileSync(file, 'utf8');
  const document = YAML.parse(text) as Record<string, any>;
  const globalSecurity: unknown[] = document['security'] ?? [];
  const operations: Operation[] = [];
  for (const [p, item] of Object.entries<Record<string, any>>(document['paths'] ?? {})) {
    for (const method of METHODS) {
      const op = item[method];
      if (!op) continue;
      const security: unknown[] = op.security ?? globalSecurity;
      const json = op.requestBody?.content?.['application/json'];
      const pathParams = [...(item['parameters'] ?? []), ...(op.parameters ?? [])].filter((x: any) => x.in === 'path');
      operations.push({
        id: op.operationId,
        method,
        path: p,
        routerPath: p.replace(/\{([^}]+)\}/g, ':$1'),
        public: security.length === 0,
        body: json ? { required: op.requestBody.required === true, schema: json.schema } : undefined,
        params:
          pathParams.length === 0
            ? undefined
            : {
                type: 'object',
                required: pathParams.map((x: any) => x.name),
                properties: Object.fromEntries(pathParams.map((x: any) => [x.name, x.schema])),
              },
      });
    }
  }
  return { document, json: JSON.stringify(document), yaml: text, operations };
}
