import { createApp } from '../../src/app';
import { loadConfig } from '../../src/config';
import { loadContract } from '../../src/http/contract';
import { checkHandlers } from '../../src/http/contract-router';
import { createLogger } from '../../src/http/request-log';
import type { Store } from '../../src/store/store';
import { TEST_SECRET, testPasswords } from '../support/make-app';

describe('the router is built from the contract', () => {
  const contract = loadContract();
  const handlerNames = Object.fromEntries(contract.operations.map((op) => [op.id, () => undefined]));

  test('when every operation has a handler and nothing else, then it passes', () => {
    expect(() => checkHandlers(contract, handlerNames)).not.toThrow();
  });

  test('when an operation has no handler, then start-up stops naming it', () => {
    const { getUser: _dropped, ...rest } = handlerNames;
    expect(() => checkHandlers(contract, rest)).toThrow('operation "getUser" in openapi.yaml has no handler');
  });

  test('when a handler has no operation, then start-up stops naming it', () => {
    expect(() => checkHandlers(contract, { ...handlerNames, deleteEverything: () => undefined })).toThrow(
      'handler "deleteEverything" has no operation in openapi.yaml',
    );
  });

  test('when the contract gains an operation the code does not handle, then createApp refuses to build', async () => {
    const grown = loadContract();
    grown.operations.push({ ...grown.operations[0]!, id: 'exportEverything' as never, path: '/export', routerPath: '/export' });
    const build = async () =>
      createApp({
        config: loadConfig({ NODE_ENV: 'test', JWT_SECRET: TEST_SECRET }),
        store: {} as Store,
        passwords: await testPasswords(),
        logger: createLogger('silent'),
        contract: grown,
      });
    await expect(build()).rejects.toThrow('operation "exportEverything" in openapi.yaml has no handler');
  });

  test('when the contract says security: [], then the operation is public; otherwise bearerAuth applies', () => {
    const publicIds = contract.operations.filter((op) => op.public).map((op) => op.id).sort();
    expect(publicIds).toEqual(['health', 'login', 'ready', 'refresh', 'serverInfo', 'signup']);
  });
});
