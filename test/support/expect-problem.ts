import type { Response } from 'supertest';
import { loadContract } from '../../src/http/contract';
import { compileSchema, createAjv } from '../../src/http/validation';

const contract = loadContract();
const ajv = createAjv(contract);
const validateProblem = compileSchema(ajv, { $ref: '#/components/schemas/Problem' });

/**
 * Checks that a response is an `application/problem+json` document that matches the contract's
 * `Problem` schema and agrees with its own status, for answers that belong to no operation
 * (an unknown path, a wrong method) and so cannot go through `expectContract`.
 */
export function expectProblem(res: Response, status: number, code?: string): Response {
  const type = String(res.headers['content-type'] ?? '').split(';')[0];
  if (res.status !== status) throw new Error(`status is ${res.status}, want ${status}\n${res.text}`);
  if (type !== 'application/problem+json') throw new Error(`content type is ${type}, want application/problem+json\n${res.text}`);
  if (!validateProblem(res.body)) throw new Error(`body breaks the Problem schema: ${ajv.errorsText(validateProblem.errors)}\n${res.text}`);
  const body = res.body as { status: number; code?: string };
  if (body.status !== status) throw new Error(`body.status is ${body.status}, want ${status}`);
  if (code !== undefined && body.code !== code) throw new Error(`code is ${String(body.code)}, want ${code}\n${res.text}`);
  return res;
}

/** The contract's operations, for tests that must cover every one of them. */
export const operations = contract.operations;
