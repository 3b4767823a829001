import path from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { Kysely, Migrator, PostgresDialect, SqliteDialect, sql } from 'kysely';
import pg from 'pg';
import { hashToken } from '../../src/services/tokens';
import { migrationProvider } from '../../src/store/migrations';
import { openStore } from '../../src/store/open-store';
import type { Store } from '../../src/store/store';
import { createTestDatabase } from '../support/postgres';
import { tempDir } from '../support/server-process';
import { postgresUp } from '../support/services';

const T0 = Date.UTC(2026, 5, 1);
const DAY = 86_400_000;

interface Backend {
  name: string;
  up: boolean;
  /** A database, its URL, a kysely handle on it, and a clean-up. */
  open(): Promise<{ url: string; db: Kysely<any>; cleanup: () => Promise<void> }>;
}

const backends: Backend[] = [
  {
    name: 'SQLite',
    up: true,
    async open() {
      const file = path.join(tempDir(), 'auth.db');
      const db = new Kysely<any>({ dialect: new SqliteDialect({ database: new SqliteDatabase(file) }) });
      return { url: `sqlite:${file}`, db, cleanup: async () => undefined };
    },
  },
  {
    name: 'PostgreSQL',
    up: postgresUp(),
    async open() {
      const { url, drop } = await createTestDatabase();
      const db = new Kysely<any>({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: url, max: 2 }) }) });
      return { url, db, cleanup: drop };
    },
  },
];

const user = (id: string) => ({ id, name: id, name_key: id, password_hash: 'h', role: 'user', disabled: 0, created_at: T0, updated_at: T0 });
const session = (id: string, userId: string, revokedAt: number | null) => ({
  id,
  user_id: userId,
  created_at: T0,
  last_used_at: T0,
  expires_at: T0 + 30 * DAY,
  user_agent: null,
  revoked_at: revokedAt,
  revoke_reason: revokedAt === null ? null : 'logout',
});
const token = (name: string, sessionId: string, parent: string | null = null) => ({
  token_hash: hashToken(name),
  session_id: sessionId,
  parent_hash: parent === null ? null : hashToken(parent),
  created_at: T0,
  expires_at: T0 + DAY,
  used_at: null,
});

describe.each(backends)('the integrity migration on $name', (backend) => {
  (backend.up ? test : test.skip)(
    'when a database made by the previous version is opened, then its revocations are logged, orphans go, and the schema refuses what breaks it',
    async () => {
      const { url, db, cleanup } = await backend.open();
      let store: Store | undefined;
      try {
        // The schema as the previous release left it, with the data it allowed.
        const { error } = await new Migrator({ db, provider: migrationProvider }).migrateTo('0002_sessions');
        expect(error).toBeUndefined();
        await db
          .insertInto('users')
          .values([user('u1'), user('u2')])
          .execute();
        await db
          .insertInto('sessions')
          .values([
            session('live', 'u1', null),
            session('ended', 'u1', T0 + 1),
            session('gone-revoked', 'deleted-user', T0 + 2),
            session('gone-live', 'deleted-user', null),
          ])
          .execute();
        await db
          .insertInto('refresh_tokens')
          .values([
            token('t-live', 'live'),
            token('t-ended', 'ended'),
            token('t-gone', 'gone-revoked'),
            token('t-gone-2', 'gone-live'),
            token('t-lost', 'no-such-session'),
          ])
          .execute();
        await db.destroy();

        store = await openStore(url);

        // Every revocation is in the log (the orphan that was live is revoked on the way), so
        // polling instances learn of each.
        const log = await store.revocationsAfter(undefined, 0);
        expect(log.revocations.map((r) => r.sessionId).sort()).toEqual(['ended', 'gone-live', 'gone-revoked']);
        expect(await store.findSession('live')).toMatchObject({ userId: 'u1', revokedAt: null });
        expect(await store.findSession('gone-revoked')).toBeUndefined();
        expect(await store.findSession('gone-live')).toBeUndefined();
        expect(await store.findRefreshToken(hashToken('t-live'))).toMatchObject({ sessionId: 'live', childEnc: null });
        for (const t of ['t-gone', 't-gone-2', 't-lost']) expect(await store.findRefreshToken(hashToken(t))).toBeUndefined();

        // What the schema now refuses by itself, whatever the application code does.
        const refusals: [string, () => Promise<unknown>][] = [
          [
            'a session of no user',
            () =>
              store!.createSession(
                { id: 's-x', userId: 'nobody', createdAt: T0, lastUsedAt: T0, expiresAt: T0 + DAY, userAgent: null },
                { tokenHash: hashToken('x'), parentHash: null, expiresAt: T0 + DAY },
              ),
          ],
          ['a second child of one refresh token', () => rawInsertToken(url, token('t-child-2', 'live', 't-live'), token('t-child-3', 'live', 't-live'))],
          [
            'an unknown role',
            () =>
              rawExec(
                url,
                `insert into users (id, name, name_key, password_hash, role, disabled, created_at, updated_at) values ('u9', 'u9', 'u9', 'h', 'root', 0, ${T0}, ${T0})`,
              ),
          ],
          ['a disabled flag of 2', () => rawExec(url, `update users set disabled = 2 where id = 'u2'`)],
          [
            'a token hash that is not SHA-256 hex',
            () => rawExec(url, `insert into refresh_tokens (token_hash, session_id, created_at, expires_at) values ('short', 'live', ${T0}, ${T0 + DAY})`),
          ],
          ['a session that ends before it starts', () => rawExec(url, `update sessions set expires_at = created_at - 1 where id = 'live'`)],
          ['a revocation without a reason', () => rawExec(url, `update sessions set revoked_at = ${T0} where id = 'live'`)],
        ];
        const outcomes: string[] = [];
        for (const [name, act] of refusals)
          outcomes.push(
            await act().then(
              () => `${name}: accepted`,
              (e: Error) => `${name}: ${e.message ? 'refused' : 'refused?'}`,
            ),
          );
        expect(outcomes).toEqual(refusals.map(([name]) => `${name}: refused`));

        // Deleting a user takes its sessions and their tokens with it (the log keeps the revocations).
        await store.revokeUserSessions('u1', 'user_deleted', T0 + 10);
        await store.deleteUser('u1');
        expect(await store.findSession('live')).toBeUndefined();
        expect(await store.findRefreshToken(hashToken('t-live'))).toBeUndefined();
        expect((await store.revocationsAfter(log.cursor, 0)).revocations.map((r) => r.sessionId)).toEqual(['live']);
      } finally {
        await store?.close();
        await cleanup();
      }
    },
    30_000,
  );
});

/** Runs one statement on a connection of its own (so a failure cannot poison the store's). */
async function rawExec(url: string, statement: string): Promise<void> {
  const db = url.startsWith('sqlite:')
    ? new Kysely<any>({ dialect: new SqliteDialect({ database: openSqlite(url) }) })
    : new Kysely<any>({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: url, max: 1 }) }) });
  try {
    await sql.raw(statement).execute(db);
  } finally {
    await db.destroy();
  }
}

async function rawInsertToken(url: string, ...rows: ReturnType<typeof token>[]): Promise<void> {
  for (const r of rows) {
    await rawExec(
      url,
      `insert into refresh_tokens (token_hash, session_id, parent_hash, created_at, expires_at) values ('${r.token_hash}', '${r.session_id}', '${r.parent_hash}', ${r.created_at}, ${r.expires_at})`,
    );
  }
}

function openSqlite(url: string): SqliteDatabase.Database {
  const database = new SqliteDatabase(url.slice('sqlite:'.length));
  // Foreign keys are per connection in SQLite; the server turns them on for its own.
  database.pragma('foreign_keys = ON');
  return database;
}
