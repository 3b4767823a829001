import Ajv2020, { type ErrorObject, type ValidateFunction } from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import type { FieldError } from '../errors';
import type { Contract, Schema } from './contract';

export const CONTRACT_SCHEMA_ID = 'openapi.json';

/**
 * An ajv instance that knows the contract's components, so `$ref`s into the contract resolve.
 * OpenAPI 3.1 schemas are JSON Schema 2020-12.
 */
export function createAjv(contract: Contract): Ajv2020 {
  const ajv = new Ajv2020({ allErrors: true, strict: false, validateFormats: true });
  addFormats(ajv);
  ajv.addSchema({ $id: CONTRACT_SCHEMA_ID, components: contract.document['components'] }, CONTRACT_SCHEMA_ID);
  return ajv;
}

/** Compiles a schema from the contract, resolving its local `$ref`s against the contract. */
export function compileSchema(ajv: Ajv2020, schema: Schema): ValidateFunction {
  return ajv.compile(rebase(schema) as Schema);
}

/** Rewrites `#/components/...` refs to point into the registered contract schema. */
function rebase(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(rebase);
  if (node && typeof node === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(node)) {
      out[k] = k === '$ref' && typeof v === 'string' && v.startsWith('#/') ? `${CONTRACT_SCHEMA_ID}${v}` : rebase(v);
    }
    return out;
  }
  return node;
}

/** ajv's errors as field errors with JSON Pointers into the request (`/body/name`). */
export function fieldErrors(errors: ErrorObject[] | null | undefined, prefix: string): FieldError[] {
  const out: FieldError[] = [];
  const seen = new Set<string>();
  for (const e of errors ?? []) {
    let pointer = prefix + e.instancePath;
    let message = e.message ?? 'is invalid';
    if (e.keyword === 'required') {
      pointer += `/${(e.params as { missingProperty: string }).missingProperty}`;
      message = 'is required';
    } else if (e.keyword === 'additionalProperties') {
      pointer += `/${(e.params as { additionalProperty: string }).additionalProperty}`;
      message = 'is not allowed';
    }
    const key = `${pointer} ${message}`;
    if (!seen.has(key)) {
      seen.add(key);
      out.push({ pointer, message });
    }
  }
  return out;
}
