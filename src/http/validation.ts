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
  ajv.addSchema({ $id: CONTRACT_SCHEMA_ID, components: contract.document['components'] as unknown }, CONTRACT_SCHEMA_ID);
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

/** At most this many field errors are reported: a body of 16 KiB could otherwise name thousands. */
export const MAX_FIELD_ERRORS = 20;
/** Longest pointer reported; an unknown property with a longer name is reported at its parent. */
export const MAX_POINTER_CHARS = 256;

/** RFC 6901 §3: `~` and `/` in a property name are escaped in a JSON Pointer. */
const escapePointer = (name: string) => name.replace(/~/g, '~0').replace(/\//g, '~1');

/**
 * ajv's errors as field errors with JSON Pointers into the request (`/body/name`): at most
 * {@link MAX_FIELD_ERRORS}, each pointer at most {@link MAX_POINTER_CHARS} characters, so the
 * problem document stays small whatever the request (the contract's `Problem` says so).
 */
export function fieldErrors(errors: ErrorObject[] | null | undefined, prefix: string): FieldError[] {
  const out: FieldError[] = [];
  const seen = new Set<string>();
  for (const e of errors ?? []) {
    if (out.length >= MAX_FIELD_ERRORS) break;
    let pointer = prefix + e.instancePath;
    let message = e.message ?? 'is invalid';
    if (e.keyword === 'required') {
      pointer += `/${escapePointer((e.params as { missingProperty: string }).missingProperty)}`;
      message = 'is required';
    } else if (e.keyword === 'additionalProperties') {
      const name = escapePointer((e.params as { additionalProperty: string }).additionalProperty);
      if (pointer.length + 1 + name.length <= MAX_POINTER_CHARS) {
        pointer += `/${name}`;
        message = 'is not allowed';
      } else {
        message = 'has a property that is not allowed (its name is too long to repeat)';
      }
    }
    const key = `${pointer} ${message}`;
    if (!seen.has(key)) {
      seen.add(key);
      out.push({ pointer, message });
    }
  }
  return out;
}
