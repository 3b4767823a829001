import { generateKeyPairSync, sign as cryptoSign } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import jwt from 'jsonwebtoken';
import { makeApp, type TestApp } from '../support/make-app';
import { startResourceServer, type ResourceServer } from '../support/resource-server';

/**
 * The whole story of issue #13 from another service's side: this server (ES256 or EdDSA) listens
 * on 127.0.0.1 and publishes its JWKS; a second Koa app with the package's `jwtVerifier`, given
 * only the JWKS URL, the issuer and the audience, accepts this server's tokens, refuses forgeries
 * and other issuers, and keeps accepting across a key rotation without a single 401.
 */

const SECOND = 1000;

interface Setup {
  t: TestApp;
  rs: ResourceServer;
  close(): Promise<void>;
  call(token: string): Promise<{ status: number; body: Record<string, unknown> }>;
  login(): Promise<string>;
}

async function setup(alg: 'ES256' | 'EdDSA'): Promise<Setup> {
  const t = await makeApp({ JWT_ALGORITHM: alg, JWT_KEY_PUBLISH_LEAD: '600' });
  // eslint-disable-next-line @typescript-eslint/no-misused-promises -- Koa's handler ends in .catch(ctx.onerror): its promise never rejects
  const server = http.createServer(t.app.callback());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  // The verifier reads the same (fixed, advanced by the test) clock as the server.
  const rs = await startResourceServer(`${base}/.well-known/jwks.json`, t.config.jwtIssuer, t.config.jwtAudience, { clock: { now: () => t.clock.now() } });
  const user = await t.makeUser({ name: 'alice' });
  return {
    t,
    rs,
    async call(token) {
      const res = await fetch(`${rs.url}/protected`, { headers: { authorization: `Bearer ${token}` } });
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    },
    login: async () => (await t.login('alice', user.password)).access,
    async close() {
      await rs.close();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await t.close();
    },
  };
}

const kidOf = (token: string) => jwt.decode(token, { complete: true })?.header.kid ?? '';

describe.each(['ES256', 'EdDSA'] as const)('a resource server with jwtVerifier, this server signing %s', (alg) => {
  test('when a user logs in here, then the other service accepts the token with its claims, given only the JWKS URL, issuer and audience', async () => {
    const s = await setup(alg);
    try {
      const token = await s.login();
      const res = await s.call(token);
      expect(res.status).toBe(200);
      expect(res.body['claims']).toMatchObject({ name: 'alice', role: 'user', iss: s.t.config.jwtIssuer, aud: s.t.config.jwtAudience });
      expect(jwt.decode(token, { complete: true })?.header.alg).toBe(alg);
    } finally {
      await s.close();
    }
  });

  test('when keys rotate while a client keeps calling the other service, then not one call is refused; old tokens keep working and new ones carry the new kid', async () => {
    const s = await setup(alg);
    try {
      let token = await s.login();
      const oldKid = kidOf(token);
      expect((await s.call(token)).status).toBe(200);
      const next = await s.t.app.services.keyring.rotate();
      const statuses: number[] = [];
      const kids = new Set<string>();
      // Twenty minutes in steps of 30 s: the new key is published at once, signs after the
      // 10-minute lead, and the client logs in again every 5 minutes (a refresh would do the same).
      for (let i = 0; i < 40; i += 1) {
        if (i % 10 === 0) token = await s.login();
        kids.add(kidOf(token));
        statuses.push((await s.call(token)).status);
        s.t.clock.advance(30 * SECOND);
      }
      expect(statuses.filter((status) => status !== 200)).toEqual([]);
      expect([...kids].sort()).toEqual([oldKid, next.kid].sort());
      expect(s.t.app.services.keyring.signer().kid).toBe(next.kid);
    } finally {
      await s.close();
    }
  });

  test('when a token is forged (another key under the same kid, another issuer, alg none), then the other service refuses it with 401', async () => {
    const s = await setup(alg);
    try {
      const token = await s.login();
      const [, payload] = token.split('.') as [string, string];
      const claims = jwt.decode(token) as Record<string, unknown>;
      const kid = kidOf(token);
      const header = (h: object) => Buffer.from(JSON.stringify(h)).toString('base64url');
      // Another key of the same kind under the server's kid.
      const forged =
        alg === 'ES256'
          ? jwt.sign(claims, generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey, { algorithm: 'ES256', keyid: kid })
          : (() => {
              const input = `${header({ alg: 'EdDSA', kid })}.${payload}`;
              return `${input}.${cryptoSign(null, Buffer.from(input), generateKeyPairSync('ed25519').privateKey).toString('base64url')}`;
            })();
      // The server's own key, but another issuer (ES256 only: jsonwebtoken cannot sign EdDSA).
      const refused = [forged, `${header({ alg: 'none', kid })}.${payload}.`];
      if (alg === 'ES256') refused.push(s.t.sign({ ...claims, iss: 'someone-else' }));
      for (const bad of refused) {
        const res = await s.call(bad);
        expect([res.status, res.body['code']]).toEqual([401, 'invalid_token']);
      }
      // And the genuine token still passes: the refusals are about the forgeries.
      expect((await s.call(token)).status).toBe(200);
    } finally {
      await s.close();
    }
  });
});
