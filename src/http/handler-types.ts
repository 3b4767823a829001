import type { Context } from 'koa';
import type { operations } from '../generated/openapi';
import type { AccessClaims } from '../services/tokens';
import type { OperationId } from './contract';

type Op<K extends OperationId> = operations[K];

/** The JSON request body the contract allows for an operation (`undefined` when it takes none). */
export type RequestBody<K extends OperationId> = Op<K> extends { requestBody: { content: { 'application/json': infer B } } }
  ? B
  : Op<K> extends { requestBody?: { content: { 'application/json': infer B } } }
    ? B | undefined
    : undefined;

export type PathParams<K extends OperationId> = Op<K>['parameters'] extends { path: infer P } ? P : Record<string, never>;

type SuccessStatus = 200 | 201 | 202 | 204;

/**
 * What a handler may answer: one of the operation's success statuses with exactly the body the
 * contract gives it. A body the contract does not allow fails `tsc`.
 */
export type Reply<K extends OperationId> = {
  [S in keyof Op<K>['responses'] & SuccessStatus]: Op<K>['responses'][S] extends { content: { 'application/json': infer B } }
    ? { status: S; body: B }
    : { status: S; body?: undefined };
}[keyof Op<K>['responses'] & SuccessStatus];

export interface HandlerInput<K extends OperationId> {
  body: RequestBody<K>;
  params: PathParams<K>;
  /** The verified access token, on operations that require one. */
  auth: AccessClaims;
  ctx: Context;
}

export type Handler<K extends OperationId> = (input: HandlerInput<K>) => Promise<Reply<K>> | Reply<K>;

/** One handler per operation of the contract, keyed by operationId. */
export type Handlers = { [K in OperationId]: Handler<K> };
