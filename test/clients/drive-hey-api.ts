/**
 * Drives the client @hey-api/openapi-ts generated from openapi.yaml (copied next to it, in a
 * temporary folder, by test/integration/generated-clients.test.ts): log in, who am I, refresh,
 * log out. Compiled under --strict with the generated code, so this also checks that the
 * generated types fit how the contract is used.
 */
import { createClient } from './hey-api/client/index.js';
import { getUser, login, logout, refresh } from './hey-api/sdk.gen.js';

export interface Drive {
  loginStatus: number;
  me: unknown;
  refreshStatus: number;
  rotated: boolean;
  logoutStatus: number;
  afterLogout: { status: number; code: string | undefined };
}

export async function drive(baseUrl: string, name: string, password: string): Promise<Drive> {
  const client = createClient({ baseUrl });

  // throwOnError: the answer is the success type, and a problem document is thrown instead.
  const signedIn = await login({ client, body: { name, password }, throwOnError: true });
  const { access_token: access, refresh_token: refreshToken } = signedIn.data;
  if (refreshToken === undefined) throw new Error('login answered without a refresh token');

  // `auth` fills the bearer scheme the contract declares for the operation.
  const me = await getUser({ client, auth: access, throwOnError: true });

  const renewed = await refresh({ client, body: { refresh_token: refreshToken }, throwOnError: true });
  const out = await logout({ client, auth: renewed.data.access_token, throwOnError: true });

  // Without throwOnError: the error is the contract's Problem.
  const after = await getUser({ client, auth: renewed.data.access_token });

  return {
    loginStatus: signedIn.response.status,
    me: me.data,
    refreshStatus: renewed.response.status,
    rotated: renewed.data.refresh_token !== undefined && renewed.data.refresh_token !== refreshToken,
    logoutStatus: out.response.status,
    afterLogout: { status: after.response?.status ?? 0, code: after.error?.code },
  };
}
