import { openStore } from '../../src/store/open-store';

// Which database drivers get loaded: each mock records its name when first required.
const mockLoaded = new Set<string>();
jest.mock('pg', () => {
  mockLoaded.add('pg');
  return jest.requireActual('pg');
});
jest.mock('better-sqlite3', () => {
  mockLoaded.add('better-sqlite3');
  return jest.requireActual('better-sqlite3');
});

describe('openStore loads only the driver its URL names', () => {
  test('when the store is SQLite, then pg is never loaded (it would cost a server on SQLite memory for nothing)', async () => {
    const store = await openStore('sqlite::memory:');
    await store.close();
    expect([...mockLoaded]).toEqual(['better-sqlite3']);
  });
});
