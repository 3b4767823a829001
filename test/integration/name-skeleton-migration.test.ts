import path from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { Kysely, Migrator, PostgresDialect, SqliteDialect } from 'kysely';
import pg from 'pg';
import { nameSkeleton } from '../../src/services/names';
import { migrationProvider } from '../../src/store/migrations';
import { openStore } from '../../src/store/open-store';
import type { Store } from '../../src/store/store';
import { createTestDatabase } from '../support/postgres';
import { tempDir } from '../support/server-process';
import { postgresUp } from '../support/services';

const T0 = Date.UTC(2026, 5, 1);

interface Backend {
  name: string;
  up: boolean;
  /** A new database: its URL and a clean-up. */
  create(): Promise<{ url: string; cleanup: () => Promise<void> }>;
  /** A kysely handle of its own on the database at `url`. */
  connect(url: string): Kysely<any>;
}

const backends: Backend[] = [
  {
    name: 'SQLite',
    up: true,
    create: async () => ({ url: `sqlite:${path.join(tempDir(), 'auth.db')}`, cleanup: async () => undefined }),
    connect: (url) => new Kysely<any>({ dialect: new SqliteDialect({ database: new SqliteDatabase(url.slice('sqlite:'.length)) }) }),
  },
  {
    name: 'PostgreSQL',
    up: postgresUp(),
    create: async () => {
      const { url, drop } = await createTestDatabase();
      return { url, cleanup: drop };
    },
    connect: (url) => new Kysely<any>({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: url, max: 2 }) }) }),
  },
];

/** A user row as the previous release stored it (no skeleton), made `minutes` after T0. */
const legacyUser = (id: string, name: string, minutes: number) => ({
  id,
  name,
  name_key: name.normalize('NFKC').toLowerCase().normalize('NFKC'),
  password_hash: 'h',
  role: 'user',
  disabled: 0,
  created_at: T0 + minutes * 60_000,
  updated_at: T0 + minutes * 60_000,
});

describe.each(backends)('the name skeleton migration on $name', (backend) => {
  (backend.up ? test : test.skip)(
    'when accounts made by the previous version already look alike, then the oldest keeps the skeleton, the others are kept with none, and new look-alikes are refused',
    async () => {
      const { url, cleanup } = await backend.create();
      const db = backend.connect(url);
      let store: Store | undefined;
      try {
        const { error } = await new Migrator({ db, provider: migrationProvider }).migrateTo('0003_integrity_and_revocation_log');
        expect(error).toBeUndefined();
        // Inserted out of age order: the migration goes by created_at, not by insertion.
        await db
          .insertInto('users')
          .values([legacyUser('u-cyr', '\u0430dmin', 2), legacyUser('u-admin', 'admin', 0), legacyUser('u-acute', 'Admiń', 1), legacyUser('u-bob', 'bob', 3)])
          .execute();
        await db.destroy();

        store = await openStore(url);

        const reader = backend.connect(url);
        const rows = await reader.selectFrom('users').select(['id', 'name_skeleton']).orderBy('id').execute();
        await reader.destroy();
        expect(rows).toEqual([
          { id: 'u-acute', name_skeleton: null },
          { id: 'u-admin', name_skeleton: nameSkeleton('admin') },
          { id: 'u-bob', name_skeleton: nameSkeleton('bob') },
          { id: 'u-cyr', name_skeleton: null },
        ]);

        // The legacy accounts are kept, names and all, and still found by name.
        expect((await store.findUserByNameKey('admiń'))?.id).toBe('u-acute');
        expect((await store.findUserByNameKey('\u0430dmin'))?.id).toBe('u-cyr');

        // The skeleton held by the oldest still turns new look-alikes away.
        const lookAlike = {
          id: 'u-new',
          name: 'ádmin',
          nameKey: 'ádmin',
          nameSkeleton: nameSkeleton('ádmin'),
          passwordHash: 'h',
          role: 'user' as const,
          now: T0 + 600_000,
        };
        await expect(store.createUser(lookAlike)).rejects.toEqual(expect.objectContaining({ code: 'name_taken' }));
        const other = {
          id: 'u-new',
          name: 'carol',
          nameKey: 'carol',
          nameSkeleton: nameSkeleton('carol'),
          passwordHash: 'h',
          role: 'user' as const,
          now: T0 + 600_000,
        };
        await expect(store.createUser(other)).resolves.toMatchObject({ name: 'carol' });
      } finally {
        await store?.close();
        await cleanup();
      }
    },
    30_000,
  );
});
