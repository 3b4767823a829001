/**
 * Compile-time checks of the typed client, run by `tsc --noEmit` (npm test). The block between
 * the markers is the README's "Typed client" snippet word for word (test/integration/
 * client-package.test.ts holds them equal); `koa-jwt-auth-server` resolves to src/client.ts
 * through `paths` in tsconfig.json. An ES module (.mts), as the snippet awaits at top level.
 */
declare const password: string;

// README snippet: begin
import { createClient } from 'koa-jwt-auth-server';

const api = createClient({ baseUrl: 'http://127.0.0.1:3000' });
const { data, error } = await api.POST('/login', { body: { name: 'admin', password } });
if (error) throw new Error(error.detail); // error is the contract's Problem
const me = await api.GET('/user', { headers: { Authorization: `Bearer ${data.access_token}` } });
// README snippet: end

// The answers are the contract's schemas, not `any`.
export const role: 'user' | 'admin' | undefined = me.data?.role;
// @ts-expect-error: User has no `email`
export const email: unknown = me.data?.email;

// @ts-expect-error: the contract has no GET /users/me
await api.GET('/users/me');
// @ts-expect-error: the contract has no GET /logout (only POST)
await api.GET('/logout');
// @ts-expect-error: the login body needs a password
await api.POST('/login', { body: { name: 'admin' } });
// @ts-expect-error: a name is a string
await api.POST('/login', { body: { name: 42, password } });
// (An extra body field is not caught: openapi-fetch infers the body through a generic, which
// skips TypeScript's excess-property check; the server's validation answers 400 instead.)
