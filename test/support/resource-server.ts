import type { AddressInfo } from 'node:net';
import Koa from 'koa';
import { jwtVerifier, type VerifierOptions } from '../../src/verifier';

export interface ResourceServer {
  /** Base URL, e.g. `http://127.0.0.1:40123`; `GET /protected` answers the verified claims. */
  url: string;
  close(): Promise<void>;
}

/**
 * Another service, as a user of the package builds it: a Koa app with `jwtVerifier` in front of
 * `GET /protected`, which answers `{ claims }` (what the verifier put in `ctx.state.user`), and
 * `GET /boom`, which throws after the verifier let the request through. Listens on 127.0.0.1 on a
 * free port. `extra` adds or overrides verifier options (a clock, a cooldown).
 */
export async function startResourceServer(
  jwksUri: string,
  issuer: string,
  audience: string | string[],
  extra: Partial<VerifierOptions> = {},
): Promise<ResourceServer> {
  const app = new Koa();
  app.silent = true; // /boom's error is expected; Koa would print it
  app.use(jwtVerifier({ jwksUri, issuer, audience, ...extra }));
  app.use((ctx) => {
    if (ctx.path === '/protected') ctx.body = { claims: ctx.state[extra.key ?? 'user'] };
    else if (ctx.path === '/boom') throw new Error('downstream failure');
  });
  const server = app.listen(0, '127.0.0.1');
  await new Promise<void>((resolve, reject) => server.once('listening', resolve).once('error', reject));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeAllConnections();
      }),
  };
}
