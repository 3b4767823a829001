// Spectral's ruleset for openapi.yaml (`npm run lint:spectral`): spectral:oas and the OWASP API
// Security ruleset, both imported from node_modules, so linting needs no network. Every rule
// turned off, everywhere or for some operations, says why on the line before it.
import owasp from '@stoplight/spectral-owasp-ruleset';
import { oas } from '@stoplight/spectral-rulesets';

/** JSON Pointers to operations of openapi.yaml, for the overrides below, encoded as Spectral writes them (`{` as `%7B`). */
const op = (path, method) => `openapi.yaml#/paths/${encodeURIComponent(path.replace(/~/g, '~0').replace(/\//g, '~1'))}/${method}`;

export default {
  extends: [oas, owasp],
  rules: {
    // The only server listed is the local one `npm start` runs; deployments put HTTPS in front (README, Deploying).
    'owasp:api8:2023-no-server-http': 'off',
    // The server sends no RateLimit headers; its limits answer 429 with Retry-After, which is declared.
    'owasp:api4:2023-rate-limit': 'off',
    // CORS is closed unless CORS_ORIGINS is set, and then answers only those origins: no response always carries Access-Control-Allow-Origin.
    'owasp:api8:2023-define-cors-origin': 'off',
    // Free text (names, passwords, problem details, user agents) has no pattern, and one on the opaque refresh token would turn its 401 into a 400.
    'owasp:api4:2023-string-restricted': 'off',
  },
  overrides: [
    {
      // Public by design (`security: []`): liveness, readiness, the login page's settings, and the public keys and metadata resource servers fetch.
      files: [
        op('/healthz', 'get'),
        op('/readyz', 'get'),
        op('/info', 'get'),
        op('/.well-known/jwks.json', 'get'),
        op('/.well-known/oauth-authorization-server', 'get'),
      ],
      rules: { 'owasp:api2:2023-read-restricted': 'off' },
    },
    {
      // Public by design: logging in, refreshing (the refresh token is the credential) and self sign-up (off unless ALLOW_SIGNUP).
      files: [op('/login', 'post'), op('/refresh', 'post'), op('/users', 'post')],
      rules: { 'owasp:api2:2023-write-restricted': 'off' },
    },
    {
      // These check no token, so they never answer 401; a declared 401 would be untrue.
      files: [
        op('/healthz', 'get'),
        op('/readyz', 'get'),
        op('/info', 'get'),
        op('/users', 'post'),
        op('/.well-known/jwks.json', 'get'),
        op('/.well-known/oauth-authorization-server', 'get'),
      ],
      rules: { 'owasp:api8:2023-define-error-responses-401': 'off' },
    },
    {
      // The server limits only what checks or hashes a password (login, sign-up, password change): these never answer 429.
      files: [
        op('/healthz', 'get'),
        op('/readyz', 'get'),
        op('/info', 'get'),
        op('/refresh', 'post'),
        op('/logout', 'post'),
        op('/user', 'get'),
        op('/users', 'get'),
        op('/sessions', 'get'),
        op('/sessions/{id}', 'delete'),
        op('/.well-known/jwks.json', 'get'),
        op('/.well-known/oauth-authorization-server', 'get'),
        op('/sessions', 'delete'),
        op('/users/{id}', 'patch'),
        op('/users/{id}', 'delete'),
        op('/users/{id}/sessions', 'delete'),
        op('/audit', 'get'),
        op('/user/activity', 'get'),
      ],
      rules: { 'owasp:api4:2023-rate-limit-responses-429': 'off' },
    },
    {
      // Not paginated: every active session of the caller; a maxItems would promise a cap the server does not keep.
      files: [`${op('/sessions', 'get')}/responses/200`],
      rules: { 'owasp:api4:2023-array-limit': 'off' },
    },
  ],
};
