import { type Kysely, type Migration, type MigrationProvider, SqliteAdapter, sql } from 'kysely';
import { nameSkeleton } from '../services/names';

// Migrations take a Kysely<any>, as kysely advises: never the app's schema type, which moves on
// while a migration that has shipped must not.
/* eslint-disable @typescript-eslint/no-explicit-any */

/**
 * Versioned migrations, in order. Add new ones at the end with the next number; never edit one
 * that has shipped. Written with kysely's schema builder so they run on SQLite and PostgreSQL.
 */
export const migrations: Record<string, Migration> = {
  '0001_users': {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('users')
        .addColumn('id', 'varchar(64)', (c) => c.primaryKey())
        .addColumn('name', 'varchar(256)', (c) => c.notNull())
        .addColumn('name_key', 'varchar(256)', (c) => c.notNull().unique())
        .addColumn('password_hash', 'varchar(512)', (c) => c.notNull())
        .addColumn('role', 'varchar(16)', (c) => c.notNull())
        .addColumn('disabled', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .execute();
    },
  },
  '0002_sessions': {
    async up(db: Kysely<any>) {
      // No foreign key to users: a deleted user's sessions stay, revoked, until they expire, so
      // every instance still learns of the revocation (see the revocation list).
      await db.schema
        .createTable('sessions')
        .addColumn('id', 'varchar(64)', (c) => c.primaryKey())
        .addColumn('user_id', 'varchar(64)', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('last_used_at', 'bigint', (c) => c.notNull())
        .addColumn('expires_at', 'bigint', (c) => c.notNull())
        .addColumn('user_agent', 'varchar(512)')
        .addColumn('revoked_at', 'bigint')
        .addColumn('revoke_reason', 'varchar(64)')
        .execute();
      await db.schema.createIndex('sessions_user_id').on('sessions').column('user_id').execute();
      await db.schema.createIndex('sessions_revoked_at').on('sessions').column('revoked_at').execute();
      await db.schema
        .createTable('refresh_tokens')
        .addColumn('token_hash', 'varchar(64)', (c) => c.primaryKey())
        .addColumn('session_id', 'varchar(64)', (c) => c.notNull())
        .addColumn('parent_hash', 'varchar(64)')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('expires_at', 'bigint', (c) => c.notNull())
        .addColumn('used_at', 'bigint')
        .execute();
      await db.schema.createIndex('refresh_tokens_session_id').on('refresh_tokens').column('session_id').execute();
    },
  },
  '0003_integrity_and_revocation_log': {
    async up(db: Kysely<any>) {
      const sqlite = db.getExecutor().adapter instanceof SqliteAdapter;
      const run = async (statements: string[]) => {
        for (const statement of statements) await sql.raw(statement).execute(db);
      };
      const now = Date.now();
      // Sessions left behind by deleted users (kept revoked on purpose until now) are revoked if
      // they were not, and every revocation goes into the log, before the orphans are dropped:
      // instances polling the log still learn of each one.
      const prelude = [
        `UPDATE sessions SET revoked_at = ${now}, revoke_reason = 'user_deleted'
           WHERE revoked_at IS NULL AND NOT EXISTS (SELECT 1 FROM users u WHERE u.id = sessions.user_id)`,
        sqlite
          ? `CREATE TABLE revocations (seq INTEGER PRIMARY KEY AUTOINCREMENT, session_id VARCHAR(64) NOT NULL, revoked_at BIGINT NOT NULL)`
          : `CREATE TABLE revocations (seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, session_id VARCHAR(64) NOT NULL, revoked_at BIGINT NOT NULL)`,
        `INSERT INTO revocations (session_id, revoked_at)
           SELECT id, revoked_at FROM sessions WHERE revoked_at IS NOT NULL ORDER BY revoked_at, id`,
        `CREATE INDEX revocations_revoked_at ON revocations (revoked_at)`,
        `DELETE FROM refresh_tokens WHERE NOT EXISTS (
           SELECT 1 FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = refresh_tokens.session_id)`,
        `DELETE FROM sessions WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = sessions.user_id)`,
      ];
      if (!sqlite) {
        await run([
          ...prelude,
          `ALTER TABLE users
             ADD CONSTRAINT users_name_check CHECK (length(name) >= 1),
             ADD CONSTRAINT users_name_key_check CHECK (length(name_key) >= 1),
             ADD CONSTRAINT users_password_hash_check CHECK (length(password_hash) >= 1),
             ADD CONSTRAINT users_role_check CHECK (role IN ('user', 'admin')),
             ADD CONSTRAINT users_disabled_check CHECK (disabled IN (0, 1))`,
          `ALTER TABLE sessions
             ADD CONSTRAINT sessions_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
             ADD CONSTRAINT sessions_expiry_check CHECK (expires_at > created_at),
             ADD CONSTRAINT sessions_revoked_check CHECK ((revoked_at IS NULL) = (revoke_reason IS NULL))`,
          `ALTER TABLE refresh_tokens
             ADD COLUMN child_enc VARCHAR(256),
             ADD CONSTRAINT refresh_tokens_session_fk FOREIGN KEY (session_id) REFERENCES sessions (id) ON DELETE CASCADE,
             ADD CONSTRAINT refresh_tokens_parent_unique UNIQUE (parent_hash),
             ADD CONSTRAINT refresh_tokens_hash_check CHECK (length(token_hash) = 64),
             ADD CONSTRAINT refresh_tokens_expiry_check CHECK (expires_at > created_at)`,
        ]);
        return;
      }
      // SQLite cannot add constraints to a table: each table is made anew and its rows copied
      // (sqlite.org/lang_altertable.html, "other kinds of table schema changes"), with foreign
      // keys off meanwhile (the pragma is a no-op inside a transaction) and checked before commit.
      await run(['PRAGMA foreign_keys = OFF', 'BEGIN']);
      try {
        await run([
          ...prelude,
          `CREATE TABLE users_new (
             id VARCHAR(64) PRIMARY KEY,
             name VARCHAR(256) NOT NULL CHECK (length(name) >= 1),
             name_key VARCHAR(256) NOT NULL UNIQUE CHECK (length(name_key) >= 1),
             password_hash VARCHAR(512) NOT NULL CHECK (length(password_hash) >= 1),
             role VARCHAR(16) NOT NULL CHECK (role IN ('user', 'admin')),
             disabled INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
             created_at BIGINT NOT NULL,
             updated_at BIGINT NOT NULL)`,
          `INSERT INTO users_new SELECT id, name, name_key, password_hash, role, disabled, created_at, updated_at FROM users`,
          `DROP TABLE users`,
          `ALTER TABLE users_new RENAME TO users`,
          `CREATE TABLE sessions_new (
             id VARCHAR(64) PRIMARY KEY,
             user_id VARCHAR(64) NOT NULL REFERENCES users (id) ON DELETE CASCADE,
             created_at BIGINT NOT NULL,
             last_used_at BIGINT NOT NULL,
             expires_at BIGINT NOT NULL,
             user_agent VARCHAR(512),
             revoked_at BIGINT,
             revoke_reason VARCHAR(64),
             CHECK (expires_at > created_at),
             CHECK ((revoked_at IS NULL) = (revoke_reason IS NULL)))`,
          `INSERT INTO sessions_new SELECT id, user_id, created_at, last_used_at, expires_at, user_agent, revoked_at, revoke_reason FROM sessions`,
          `DROP TABLE sessions`,
          `ALTER TABLE sessions_new RENAME TO sessions`,
          `CREATE INDEX sessions_user_id ON sessions (user_id)`,
          `CREATE INDEX sessions_revoked_at ON sessions (revoked_at)`,
          `CREATE TABLE refresh_tokens_new (
             token_hash VARCHAR(64) PRIMARY KEY CHECK (length(token_hash) = 64),
             session_id VARCHAR(64) NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
             parent_hash VARCHAR(64) UNIQUE,
             created_at BIGINT NOT NULL,
             expires_at BIGINT NOT NULL,
             used_at BIGINT,
             child_enc VARCHAR(256),
             CHECK (expires_at > created_at))`,
          `INSERT INTO refresh_tokens_new SELECT token_hash, session_id, parent_hash, created_at, expires_at, used_at, NULL FROM refresh_tokens`,
          `DROP TABLE refresh_tokens`,
          `ALTER TABLE refresh_tokens_new RENAME TO refresh_tokens`,
          `CREATE INDEX refresh_tokens_session_id ON refresh_tokens (session_id)`,
        ]);
        const broken = await sql<{ table: string }>`PRAGMA foreign_key_check`.execute(db);
        if (broken.rows.length > 0) throw new Error(`foreign key check failed on ${broken.rows.map((r) => r.table).join(', ')}`);
        await run(['COMMIT']);
      } catch (error) {
        await run(['ROLLBACK']).catch(() => undefined);
        throw error;
      } finally {
        await run(['PRAGMA foreign_keys = ON']);
      }
    },
  },
  '0004_name_skeletons': {
    async up(db: Kysely<any>) {
      const sqlite = db.getExecutor().adapter instanceof SqliteAdapter;
      const work = async () => {
        await sql`ALTER TABLE users ADD COLUMN name_skeleton VARCHAR(512)`.execute(db);
        // Backfilled here, in code: the skeleton needs Unicode data that SQL does not have. The
        // skeleton as this version computes it; should the algorithm change, a later migration
        // recomputes the column rather than this one being edited.
        const users = await sql<{ id: string; name: string }>`SELECT id, name FROM users ORDER BY created_at, id`.execute(db);
        const claimed = new Set<string>();
        for (const { id, name } of users.rows) {
          const skeleton = nameSkeleton(name);
          // Accounts that already look alike are kept, and keep their names: the oldest holds the
          // skeleton, the later ones are left NULL (which a unique index allows more than once).
          if (claimed.has(skeleton)) continue;
          claimed.add(skeleton);
          await sql`UPDATE users SET name_skeleton = ${skeleton} WHERE id = ${id}`.execute(db);
        }
        await sql`CREATE UNIQUE INDEX users_name_skeleton ON users (name_skeleton)`.execute(db);
      };
      // PostgreSQL runs each migration in a transaction already; SQLite's migrations are not
      // wrapped (kysely runs no DDL transaction there), so this one makes its own.
      if (!sqlite) return work();
      await sql`BEGIN`.execute(db);
      try {
        await work();
        await sql`COMMIT`.execute(db);
      } catch (error) {
        await sql`ROLLBACK`.execute(db).catch(() => undefined);
        throw error;
      }
    },
  },
  '0005_signing_keys': {
    async up(db: Kysely<any>) {
      // The state of a key (next, current, retired) is not a column: it follows from the times,
      // so instances agree on it by their clocks alone. `generation` is unique: of two processes
      // making "the next key" (or the first one) at the same moment, one insert is turned away.
      await db.schema
        .createTable('signing_keys')
        .addColumn('kid', 'varchar(64)', (c) => c.primaryKey())
        .addColumn('generation', 'integer', (c) => c.notNull().unique())
        .addColumn('alg', 'varchar(16)', (c) => c.notNull().check(sql`alg in ('HS256', 'ES256', 'EdDSA')`))
        .addColumn('private_enc', 'varchar(1024)', (c) => c.notNull())
        .addColumn('public_jwk', 'varchar(1024)')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('publish_at', 'bigint', (c) => c.notNull())
        .addColumn('activate_at', 'bigint', (c) => c.notNull())
        .addColumn('retired_at', 'bigint')
        .addColumn('verify_until', 'bigint')
        .addCheckConstraint('signing_keys_public_jwk_check', sql`(alg = 'HS256') = (public_jwk is null)`)
        .addCheckConstraint('signing_keys_retired_check', sql`(retired_at is null) = (verify_until is null)`)
        .execute();
    },
  },
  // Independent of 0005 (signing keys), which merges beside it: it touches only its own table and
  // one new column of sessions.
  '0006_audit_and_session_details': {
    async up(db: Kysely<any>) {
      const sqlite = db.getExecutor().adapter instanceof SqliteAdapter;
      const work = async () => {
        await sql`ALTER TABLE sessions ADD COLUMN address VARCHAR(64)`.execute(db);
        // No foreign keys to users: the trail outlives the accounts it names (user_deleted).
        await sql
          .raw(
            sqlite
              ? 'CREATE TABLE audit_events (id INTEGER PRIMARY KEY AUTOINCREMENT, at BIGINT NOT NULL, event VARCHAR(64) NOT NULL, actor_id VARCHAR(64), target_id VARCHAR(64), target_name VARCHAR(256), address VARCHAR(64), user_agent VARCHAR(512), request_id VARCHAR(64), details VARCHAR(2048))'
              : 'CREATE TABLE audit_events (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, at BIGINT NOT NULL, event VARCHAR(64) NOT NULL, actor_id VARCHAR(64), target_id VARCHAR(64), target_name VARCHAR(256), address VARCHAR(64), user_agent VARCHAR(512), request_id VARCHAR(64), details VARCHAR(2048))',
          )
          .execute(db);
        await sql`CREATE INDEX audit_events_at ON audit_events (at)`.execute(db);
        await sql`CREATE INDEX audit_events_actor ON audit_events (actor_id, id)`.execute(db);
        await sql`CREATE INDEX audit_events_target ON audit_events (target_id, id)`.execute(db);
        await sql`CREATE INDEX audit_events_event ON audit_events (event, id)`.execute(db);
      };
      if (!sqlite) return work();
      await sql`BEGIN`.execute(db);
      try {
        await work();
        await sql`COMMIT`.execute(db);
      } catch (error) {
        await sql`ROLLBACK`.execute(db).catch(() => undefined);
        throw error;
      }
    },
  },
};

export const migrationProvider: MigrationProvider = {
  getMigrations: async () => migrations,
};

/** Names of migrations applied to the database that this code does not know. */
export async function unknownMigrations(db: Kysely<any>): Promise<string[]> {
  const exists = await sql<{ n: number }>`select count(*) as n from kysely_migration`
    .execute(db)
    .then(() => true)
    .catch(() => false);
  if (!exists) return [];
  const rows = await db.selectFrom('kysely_migration').select('name').execute();
  return rows.map((r: { name: string }) => r.name).filter((name: string) => !(name in migrations));
}
