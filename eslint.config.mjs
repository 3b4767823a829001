// ESLint for the whole repository (`npm run lint`, part of `npm test`). TypeScript in src/ and
// test/ is linted with type information (typescript-eslint's recommended-type-checked rules):
// that is what catches a promise nobody awaits (no-floating-promises) or one handed to a caller
// that ignores it (no-misused-promises), which in a Koa server lose errors and answers silently.
// The pages' scripts, the benchmark and the config files are plain JavaScript, linted without
// types. Formatting is Prettier's alone: eslint-config-prettier, last, turns off every rule that
// could disagree with it. Every rule turned off or down says why on the line before it.
import js from '@eslint/js';
import prettier from 'eslint-config-prettier/flat';
import { defineConfig, globalIgnores } from 'eslint/config';
import globals from 'globals';
import tseslint from 'typescript-eslint';

/** `_`-prefixed names are unused on purpose (a parameter a signature needs, a key dropped by a rest spread). */
const unusedVars = { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none', ignoreRestSiblings: true };

export default defineConfig([
  globalIgnores([
    'dist/',
    'coverage/',
    'data/',
    'test-results/',
    'bench/results/',
    // Generated from openapi.yaml by `npm run generate`, and checked for drift instead.
    'src/generated/',
  ]),

  {
    files: ['**/*.{js,mjs,cjs,ts,mts,cts}'],
    extends: [js.configs.recommended],
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      'no-unused-vars': ['error', unusedVars],
    },
  },

  // TypeScript, with the types of the tsconfig.json that holds each file (the project service finds it).
  {
    files: ['**/*.{ts,mts,cts}'],
    extends: [tseslint.configs.recommendedTypeChecked],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      'no-unused-vars': 'off',
      '@typescript-eslint/no-unused-vars': ['error', unusedVars],
      // House style: `import type` for what is only a type. `typeof import('pg')` stays allowed:
      // it types a lazy require() (below) without loading the module at the top.
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports', disallowTypeAnnotations: false }],
      // These are loaded with require() where first needed, so that a process that never uses
      // them does not pay for them (ioredis about 7 MB of RSS, pg about 4.5 MB, the common
      // passwords list 3 MiB of heap: bench/NOTES.md, README). Any other require() is refused.
      '@typescript-eslint/no-require-imports': [
        'error',
        { allow: ['^ioredis$', '^pg$', '^better-sqlite3$', '^@zxcvbn-ts/language-common$', '^pino-pretty$', '^\\./services/metrics$'] },
      ],
      // Off: an async function without await is how this code implements a Promise-returning
      // interface (a Store, koa-jwt's isRevoked, kysely's MigrationProvider, test fakes), and
      // `async` turns a throw into a rejection, which the callers rely on. The mistakes that
      // matter with promises are no-floating-promises' and no-misused-promises', both on.
      '@typescript-eslint/require-await': 'off',
    },
  },

  // Tests read what is untyped by nature: supertest's `res.body` and `JSON.parse` are `any`, and
  // walking the parsed contract or a schema-agnostic `Kysely<any>` (kysely's advice for
  // migrations) is what several tests are for. The answers themselves are checked against the
  // contract (expectContract) and by the assertions, so these rules are off in test/ only; src/
  // keeps them.
  {
    files: ['test/**/*.{ts,mts,cts}'],
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
    },
  },

  // Compiled only in a temporary folder, next to the clients generated at test time
  // (test/integration/generated-clients.test.ts): the modules it imports do not exist here, so
  // there are no types to lint with.
  {
    files: ['test/clients/**'],
    extends: [tseslint.configs.disableTypeChecked],
  },

  // The pages' scripts: ES modules in the browser.
  {
    files: ['public/**/*.js'],
    languageOptions: { sourceType: 'module', globals: { ...globals.browser } },
  },
  // The docs page's initializer is a classic script that runs after swagger-ui-dist's bundle.
  {
    files: ['public/docs/**/*.js'],
    languageOptions: { sourceType: 'script', globals: { ...globals.browser, SwaggerUIBundle: 'readonly' } },
  },

  // The benchmark and the npm scripts' helpers: CommonJS scripts run by Node.
  {
    files: ['bench/**/*.js', 'scripts/**/*.js'],
    languageOptions: { sourceType: 'commonjs', globals: { ...globals.node } },
  },

  // Config files run by Node as ES modules (this one, .spectral.mjs).
  {
    files: ['**/*.mjs'],
    languageOptions: { sourceType: 'module', globals: { ...globals.node } },
  },

  prettier,
]);
