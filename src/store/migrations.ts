import { type Kysely, type Migration, type MigrationProvider, sql } from 'kysely';

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
