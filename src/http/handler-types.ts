import type { Context } from 'koa';
import type { operations } from '../generated/openapi';
import type { AccessClaims } from '../services/tokens';
import type { OperationId } from './contract';
import type { AUTH_USE } from './handlers';

type Op<K extends OperationId> = operations[K];

/** The JSON request body the contract allows for an operation (`undefined` when it takes none). */
export type RequestBody<K extends OperationId> =
  Op<K> extends { requestBody: { content: { 'application/json': infer B } } }
    ? B
    : Op<K> extends { requestBody?: { content: { 'application/json': infer B } } }
      ? B | undefined
      : undefined;

export type PathParams<K extends OperationId> = Op<K>['parameters'] extends { path: infer P } ? P : Record<string, never>;

/** The query parameters the contract declares (as read: numbers as numbers, defaults filled in). */
export type QueryParams<K extends OperationId> = Op<K>['parameters'] extends { query?: infer Q }
  ? undefined extends Q
    ? Exclude<Q, undefined>
    : Q
  : Record<string, never>;

// 304: a conditional GET whose validator still matches (the JWKS).
type SuccessStatus = 200 | 201 | 202 | 204 | 304;

/**
 * What a handler may answer: one of the operation's success statuses with exactly the body the
 * contract gives it. A body the contract does not allow fails `tsc`.
 */
export type Reply<K extends OperationId> = {
  [S in keyof Op<K>['responses'] & SuccessStatus]: Op<K>['responses'][S] extends { content: { 'application/json': infer B } }
    ? { status: S; body: B }
    : { status: S; body?: undefined };
}[keyof Op<K>['responses'] & SuccessStatus];

/**
 * What a handler reads of the caller's verified access token: `required`, it reads the claims and
 * cannot do without them; `optional`, it reads them when a token was sent; `none`, it never does.
 * Start-up checks each operation's use against the contract's `security` (contract-router.ts).
 */
export type AuthUse = 'required' | 'optional' | 'none';

/** One {@link AuthUse} per operation. */
export type AuthUses = { readonly [K in OperationId]: AuthUse };

/**
 * `auth` as the handler of K may read it, from the handlers' own {@link AUTH_USE} table: a handler
 * whose entry says `none` has no `auth` at all, so reading the claims without declaring it fails
 * `tsc`, and what it declares is what start-up holds the contract to.
 */
type AuthInput<U extends AuthUse> = U extends 'required'
  ? { /** The verified access token's claims. */ auth: AccessClaims }
  : U extends 'optional'
    ? { /** The verified access token's claims, when the request carried one. */ auth: AccessClaims | undefined }
    : unknown;

export type HandlerInput<K extends OperationId> = {
  body: RequestBody<K>;
  params: PathParams<K>;
  query: QueryParams<K>;
  ctx: Context;
} & AuthInput<(typeof AUTH_USE)[K]>;

export type Handler<K extends OperationId> = (input: HandlerInput<K>) => Promise<Reply<K>> | Reply<K>;

/** One handler per operation of the contract, keyed by operationId. */
export type Handlers = { [K in OperationId]: Handler<K> };
