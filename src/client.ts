import createFetchClient, { type Client, type ClientOptions } from 'openapi-fetch';
import type { components, operations, paths } from './generated/openapi';

export type { Client, ClientOptions, components, operations, paths };

/** The answers of the API, by schema name: `Schemas['User']`, `Schemas['Problem']`. */
export type Schemas = components['schemas'];

/**
 * A typed client for this server, generated from the contract (openapi-fetch over the types that
 * openapi-typescript generated from openapi.yaml): paths, bodies and answers are checked by tsc.
 *
 * @example
 * const api = createClient({ baseUrl: 'http://127.0.0.1:3000' });
 * const { data } = await api.POST('/login', { body: { name, password } });
 * const me = await api.GET('/user', { headers: { Authorization: `Bearer ${data!.access_token}` } });
 */
export function createClient(options: ClientOptions = {}): Client<paths> {
  return createFetchClient<paths>(options);
}
