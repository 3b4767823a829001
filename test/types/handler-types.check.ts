/**
 * Compile-time checks, run by `tsc --noEmit` (npm test): each `@ts-expect-error` fails the build
 * if the line below it ever type-checks, so handlers stay bound to the contract.
 */
import type { Handler, Handlers } from '../../src/http/handler-types';

export const goodUser: Handler<'getUser'> = ({ auth }) => ({ status: 200, body: { id: auth.sub, name: auth.name, role: auth.role } });

// @ts-expect-error: GET /user's answer must have a name
export const missingField: Handler<'getUser'> = () => ({ status: 200, body: { id: '1', role: 'user' } });

// (TypeScript does not check excess properties of an arrow function's returned object, so an
// extra field is caught instead by expectContract in every integration test: the contract's
// schemas say additionalProperties: false.)

// @ts-expect-error: `role` must be one of the contract's roles
export const badRole: Handler<'getUser'> = () => ({ status: 200, body: { id: '1', name: 'a', role: 'root' } });

// @ts-expect-error: the contract declares no 201 for GET /user
export const badStatus: Handler<'getUser'> = () => ({ status: 201, body: { id: '1', name: 'a', role: 'user' } });

// @ts-expect-error: token_type is the constant "Bearer"
export const badLogin: Handler<'login'> = () => ({ status: 200, body: { access_token: 'a', token_type: 'bearer', expires_in: 1, refresh_token: 'r' } });

export const readsBody: Handler<'login'> = ({ body }) => {
  const name: string = body.name;
  // @ts-expect-error: the login body has no `email`
  const email: string = body.email;
  return { status: 200, body: { access_token: name + email, token_type: 'Bearer', expires_in: 1, refresh_token: 'r' } };
};

// @ts-expect-error: login's handler is marked `none` in AUTH_USE (the contract lets anyone call it): it has no claims to read
export const loginReadsClaims: Handler<'login'> = ({ auth }) => ({ status: 200, body: { access_token: String(auth), token_type: 'Bearer', expires_in: 1 } });

// @ts-expect-error: a Handlers object must have a handler for every operation
export const missing: Handlers = { getUser: goodUser };
