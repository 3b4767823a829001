import { type Kysely, Migrator, sql } from 'kysely';
import { AuthError } from '../errors';
import { migrationProvider, unknownMigrations } from './migrations';
import type { Database } from './schema';
import type { NewRefreshToken, RotateResult, SessionRecord, Store, UserRecord } from './store';

type UserRow = Database['users'];
type SessionRow = Database['sessions'];

const toUser = (r: UserRow): UserRecord => ({
  id: r.id,
  name: r.name,
  nameKey: r.name_key,
  passwordHash: r.password_hash,
  role: r.role,
  disabled: Number(r.disabled) === 1,
  createdAt: Number(r.created_at),
  updatedAt: Number(r.updated_at),
});

const toSession = (r: SessionRow): SessionRecord => ({
  id: r.id,
  userId: r.user_id,
  createdAt: Number(r.created_at),
  lastUsedAt: Number(r.last_used_at),
  expiresAt: Number(r.expires_at),
  userAgent: r.user_agent,
  revokedAt: r.revoked_at === null ? null : Number(r.revoked_at),
});

/** True for a unique-constraint violation, in SQLite's or PostgreSQL's words. */
function isUniqueViolation(error: unknown): boolean {
  const e = error as { code?: string } | undefined;
  return e?.code === 'SQLITE_CONSTRAINT_UNIQUE' || e?.code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || e?.code === '23505';
}

/**
 * Brings the schema up to date. Refuses a database that has migrations this code does not know
 * (it was written by a newer version), naming them.
 */
export async function migrate(db: Kysely<Database>): Promise<void> {
  const unknown = await unknownMigrations(db);
  if (unknown.length > 0) {
    throw new Error(
      `The database was migrated by a newer version of this server (unknown migrations: ${unknown.join(', ')}). ` +
        'Run that version, or restore a backup made for this one.',
    );
  }
  const { error } = await new Migrator({ db, provider: migrationProvider }).migrateToLatest();
  if (error) throw new Error('Database migration failed', { cause: error });
}

/** A {@link Store} over any kysely dialect; the SQL is the same for SQLite and PostgreSQL. */
export function createKyselyStore(db: Kysely<Database>): Store {
  const activeSessions = (userId: string, now: number) =>
    db
      .selectFrom('sessions')
      .selectAll()
      .where('user_id', '=', userId)
      .where('revoked_at', 'is', null)
      .where('expires_at', '>', now);

  return {
    async ping() {
      await sql`select 1`.execute(db);
    },
    async close() {
      await db.destroy();
    },

    async countUsers() {
      const row = await db.selectFrom('users').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
      return Number(row.n);
    },
    async createUser(u) {
      const row: UserRow = {
        id: u.id,
        name: u.name,
        name_key: u.nameKey,
        password_hash: u.passwordHash,
        role: u.role,
        disabled: 0,
        created_at: u.now,
        updated_at: u.now,
      };
      try {
        await db.insertInto('users').values(row).execute();
      } catch (error) {
        if (isUniqueViolation(error)) throw new AuthError('name_taken', 'That name is taken.', { cause: error });
        throw error;
      }
      return toUser(row);
    },
    async findUserByNameKey(nameKey) {
      const row = await db.selectFrom('users').selectAll().where('name_key', '=', nameKey).executeTakeFirst();
      return row && toUser(row);
    },
    async findUserById(id) {
      const row = await db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst();
      return row && toUser(row);
    },
    async listUsers() {
      const rows = await db.selectFrom('users').selectAll().orderBy('created_at').orderBy('name_key').execute();
      return rows.map(toUser);
    },
    async setPasswordHash(id, hash, now) {
      await db.updateTable('users').set({ password_hash: hash, updated_at: now }).where('id', '=', id).execute();
    },
    async setDisabled(id, disabled, now) {
      await db.updateTable('users').set({ disabled: disabled ? 1 : 0, updated_at: now }).where('id', '=', id).execute();
    },
    async setRole(id, role, now) {
      await db.updateTable('users').set({ role, updated_at: now }).where('id', '=', id).execute();
    },
    async deleteUser(id) {
      await db.deleteFrom('users').where('id', '=', id).execute();
    },

    async createSession(s, token) {
      await db.transaction().execute(async (trx) => {
        await trx
          .insertInto('sessions')
          .values({
            id: s.id,
            user_id: s.userId,
            created_at: s.createdAt,
            last_used_at: s.lastUsedAt,
            expires_at: s.expiresAt,
            user_agent: s.userAgent,
            revoked_at: null,
            revoke_reason: null,
          })
          .execute();
        await trx
          .insertInto('refresh_tokens')
          .values({
            token_hash: token.tokenHash,
            session_id: s.id,
            parent_hash: token.parentHash,
            created_at: s.createdAt,
            expires_at: token.expiresAt,
            used_at: null,
          })
          .execute();
      });
    },
    async rotateRefreshToken(oldHash: string, next: NewRefreshToken, now: number): Promise<RotateResult> {
      return db.transaction().execute(async (trx) => {
        const token = await trx.selectFrom('refresh_tokens').selectAll().where('token_hash', '=', oldHash).executeTakeFirst();
        if (!token) return { outcome: 'invalid' };
        if (token.used_at !== null) return { outcome: 'reused', sessionId: token.session_id, usedAt: Number(token.used_at) };
        const session = await trx.selectFrom('sessions').selectAll().where('id', '=', token.session_id).executeTakeFirst();
        if (!session || session.revoked_at !== null || Number(session.expires_at) <= now || Number(token.expires_at) <= now) {
          return { outcome: 'invalid' };
        }
        const user = await trx.selectFrom('users').selectAll().where('id', '=', session.user_id).executeTakeFirst();
        if (!user || Number(user.disabled) === 1) return { outcome: 'invalid' };
        // Guarded and before any write: a revocation (logout, password change) that commits while
        // this runs wins. Under PostgreSQL the update waits for the revoker's row lock and then
        // re-checks revoked_at; unguarded, a refresh racing a logout answered with fresh tokens
        // of a session that had just ended. (SQLite runs transactions one at a time.)
        const touched = await trx
          .updateTable('sessions')
          .set({ last_used_at: now })
          .where('id', '=', session.id)
          .where('revoked_at', 'is', null)
          .where('expires_at', '>', now)
          .executeTakeFirst();
        if (Number(touched.numUpdatedRows) !== 1) return { outcome: 'invalid' };
        // The guard on used_at makes the claim atomic: under PostgreSQL a concurrent claim waits
        // for the row lock and then updates nothing; under SQLite transactions are serialised.
        const claimed = await trx
          .updateTable('refresh_tokens')
          .set({ used_at: now })
          .where('token_hash', '=', oldHash)
          .where('used_at', 'is', null)
          .executeTakeFirst();
        if (Number(claimed.numUpdatedRows) !== 1) return { outcome: 'reused', sessionId: token.session_id, usedAt: now };
        await trx
          .insertInto('refresh_tokens')
          .values({
            token_hash: next.tokenHash,
            session_id: session.id,
            parent_hash: oldHash,
            created_at: now,
            expires_at: next.expiresAt,
            used_at: null,
          })
          .execute();
        return { outcome: 'rotated', session: { ...toSession(session), lastUsedAt: now }, user: toUser(user) };
      });
    },
    async findSession(id) {
      const row = await db.selectFrom('sessions').selectAll().where('id', '=', id).executeTakeFirst();
      return row && toSession(row);
    },
    async listActiveSessions(userId, now) {
      const rows = await activeSessions(userId, now).orderBy('created_at', 'desc').execute();
      return rows.map(toSession);
    },
    async revokeSession(id, reason, now) {
      const result = await db
        .updateTable('sessions')
        .set({ revoked_at: now, revoke_reason: reason })
        .where('id', '=', id)
        .where('revoked_at', 'is', null)
        .executeTakeFirst();
      return Number(result.numUpdatedRows) === 1;
    },
    async revokeUserSessions(userId, reason, now) {
      return db.transaction().execute(async (trx) => {
        const rows = await trx
          .selectFrom('sessions')
          .select('id')
          .where('user_id', '=', userId)
          .where('revoked_at', 'is', null)
          .execute();
        if (rows.length === 0) return [];
        await trx
          .updateTable('sessions')
          .set({ revoked_at: now, revoke_reason: reason })
          .where('user_id', '=', userId)
          .where('revoked_at', 'is', null)
          .execute();
        return rows.map((r) => r.id);
      });
    },
    async revokedSince(since) {
      const rows = await db
        .selectFrom('sessions')
        .select(['id', 'revoked_at'])
        .where('revoked_at', '>=', since)
        .execute();
      return rows.map((r) => ({ sessionId: r.id, revokedAt: Number(r.revoked_at) }));
    },
    async pruneSessions(before) {
      return db.transaction().execute(async (trx) => {
        const ended = trx
          .selectFrom('sessions')
          .select('id')
          .where((eb) => eb.or([eb('expires_at', '<', before), eb('revoked_at', '<', before)]));
        await trx.deleteFrom('refresh_tokens').where('session_id', 'in', ended).execute();
        const result = await trx
          .deleteFrom('sessions')
          .where((eb) => eb.or([eb('expires_at', '<', before), eb('revoked_at', '<', before)]))
          .executeTakeFirst();
        return Number(result.numDeletedRows);
      });
    },
  };
}
