import { type Kysely, Migrator, SqliteAdapter, type Transaction, sql } from 'kysely';
import { AuthError } from '../errors';
import { migrationProvider, unknownMigrations } from './migrations';
import type { Database } from './schema';
import type {
  AuditEventRecord,
  NewAuditEvent,
  NewRefreshToken,
  RefreshTokenRow,
  RotateResult,
  SessionRecord,
  SigningKeyRecord,
  Store,
  UserChangeOptions,
  UserChangeResult,
  UserRecord,
} from './store';

type UserRow = Database['users'];
type SessionRow = Database['sessions'];
type KeyRow = Database['signing_keys'];

const toKey = (r: KeyRow): SigningKeyRecord => ({
  kid: r.kid,
  generation: Number(r.generation),
  alg: r.alg,
  privateEnc: r.private_enc,
  publicJwk: r.public_jwk,
  createdAt: Number(r.created_at),
  publishAt: Number(r.publish_at),
  activateAt: Number(r.activate_at),
  retiredAt: r.retired_at === null ? null : Number(r.retired_at),
  verifyUntil: r.verify_until === null ? null : Number(r.verify_until),
});

const fromKey = (k: SigningKeyRecord): KeyRow => ({
  kid: k.kid,
  generation: k.generation,
  alg: k.alg,
  private_enc: k.privateEnc,
  public_jwk: k.publicJwk,
  created_at: k.createdAt,
  publish_at: k.publishAt,
  activate_at: k.activateAt,
  retired_at: k.retiredAt,
  verify_until: k.verifyUntil,
});

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
  address: r.address ?? null,
  revokedAt: r.revoked_at === null ? null : Number(r.revoked_at),
});

type AuditRow = Database['audit_events'];

const toAuditRow = (e: NewAuditEvent): Omit<AuditRow, 'id'> => ({
  at: e.at,
  event: e.event,
  actor_id: e.actorId,
  target_id: e.targetId,
  target_name: e.targetName,
  address: e.address,
  user_agent: e.userAgent,
  request_id: e.requestId,
  details: e.details === null ? null : JSON.stringify(e.details),
});

const fromAuditRow = (r: Omit<AuditRow, 'id'> & { id: number }): AuditEventRecord => ({
  id: Number(r.id),
  at: Number(r.at),
  event: r.event,
  actorId: r.actor_id,
  targetId: r.target_id,
  targetName: r.target_name,
  address: r.address,
  userAgent: r.user_agent,
  requestId: r.request_id,
  details: r.details === null ? null : (JSON.parse(r.details) as Record<string, unknown>),
});

/** `%` and `_` are LIKE's wildcards, `\\` its escape here: a search for them finds them. */
const likeEscape = (text: string) => text.replace(/[\\%_]/g, (c) => `\\${c}`);

/** True for a unique-constraint violation, in SQLite's or PostgreSQL's words. */
function isUniqueViolation(error: unknown): boolean {
  const e = error as { code?: string } | undefined;
  return e?.code === 'SQLITE_CONSTRAINT_UNIQUE' || e?.code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || e?.code === '23505';
}

/** Whether a unique violation was on the name skeleton (PostgreSQL names the index; SQLite the column). */
function onSkeleton(error: unknown): boolean {
  const e = error as { constraint?: string; message?: string } | undefined;
  return e?.constraint === 'users_name_skeleton' || /users\.name_skeleton/.test(e?.message ?? '');
}

/** `name_taken` for a name in use, or one that looks like a name in use (the same answer, 409). */
function nameTaken(error: unknown): AuthError {
  const detail = onSkeleton(error) ? 'That name is too similar to an existing name.' : 'That name is taken.';
  return new AuthError('name_taken', detail, { cause: error });
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

/**
 * The advisory lock that orders writers of the revocation log (PostgreSQL). A sequence hands out
 * numbers at insert time, not commit time: unordered, a revocation numbered 10 could commit after
 * 11 had been read, and a poll that had moved past 11 would never see it. Taken as the last step
 * of the transaction and held to its commit, it makes the order of `seq` the order of commits.
 * (SQLite runs one writer at a time, so its order is the commit order already.)
 */
export const REVOCATION_LOG_LOCK = '7315930462710413';

/**
 * The advisory lock that serialises changes able to take away an enabled admin (demote, disable,
 * delete) on PostgreSQL, so that "is another enabled admin left?" and the change are one step:
 * under READ COMMITTED two demotions of two admins would each see the other still an admin and
 * both commit. Taken first in the transaction (before the revocation log's lock, which comes last).
 */
export const ADMIN_CHANGE_LOCK = '7315930462710414';

/** Rows one poll reads at most; the next poll goes on from there. */
const REVOCATION_BATCH = 5_000;

/** A {@link Store} over any kysely dialect; the SQL is the same for SQLite and PostgreSQL. */
export function createKyselyStore(db: Kysely<Database>): Store {
  const postgres = !(db.getExecutor().adapter instanceof SqliteAdapter);

  const logRevocations = async (trx: Transaction<Database>, ids: string[], now: number) => {
    if (ids.length === 0) return;
    if (postgres) await sql`select pg_advisory_xact_lock(${sql.raw(REVOCATION_LOG_LOCK)})`.execute(trx);
    await trx
      .insertInto('revocations')
      .values(ids.map((id) => ({ session_id: id, revoked_at: now })))
      .execute();
  };

  const insertAudit = async (trx: Transaction<Database>, event: NewAuditEvent | NewAuditEvent[] | undefined) => {
    const events = event === undefined ? [] : Array.isArray(event) ? event : [event];
    if (events.length > 0) await trx.insertInto('audit_events').values(events.map(toAuditRow)).execute();
  };

  /** Revokes the user's active sessions (but one) in `trx`; the ids it revoked. Logs them last. */
  const revokeAllIn = async (trx: Transaction<Database>, userId: string, reason: string, now: number, except?: string) => {
    let update = trx.updateTable('sessions').set({ revoked_at: now, revoke_reason: reason }).where('user_id', '=', userId).where('revoked_at', 'is', null);
    if (except !== undefined) update = update.where('id', '<>', except);
    // One statement decides which sessions this call revoked: a concurrent revoker of the same
    // user waits for the row locks and then finds them revoked.
    const rows = await update.returning('id').execute();
    return rows.map((r) => r.id);
  };

  /**
   * The shared body of updateUser and removeUser: lock (PostgreSQL), read, check the last admin,
   * change, revoke, audit, log the revocations; all in one transaction.
   */
  const changeUser = (
    id: string,
    opts: UserChangeOptions,
    removesAdmin: (user: UserRecord) => boolean,
    apply: (trx: Transaction<Database>) => Promise<unknown>,
  ): Promise<UserChangeResult> =>
    db.transaction().execute(async (trx) => {
      if (postgres && opts.keepAnAdmin) await sql`select pg_advisory_xact_lock(${sql.raw(ADMIN_CHANGE_LOCK)})`.execute(trx);
      const row = await trx.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst();
      if (!row) return { outcome: 'not_found' as const };
      const before = toUser(row);
      if (opts.keepAnAdmin && before.role === 'admin' && !before.disabled && removesAdmin(before)) {
        const others = await trx
          .selectFrom('users')
          .select((eb) => eb.fn.countAll<number>().as('n'))
          .where('role', '=', 'admin')
          .where('disabled', '=', 0)
          .where('id', '<>', id)
          .executeTakeFirstOrThrow();
        if (Number(others.n) === 0) return { outcome: 'last_admin' as const };
      }
      // Revoked before a delete, and the revocations logged: servers polling the log learn of them.
      const reason = typeof opts.revokeReason === 'function' ? opts.revokeReason(before) : opts.revokeReason;
      const revoked = reason === undefined ? [] : await revokeAllIn(trx, id, reason, opts.now);
      await apply(trx);
      await insertAudit(trx, opts.audit?.(before, revoked));
      await logRevocations(trx, revoked, opts.now);
      return { outcome: 'changed' as const, before, revoked };
    });

  const activeSessions = (userId: string, now: number) =>
    db.selectFrom('sessions').selectAll().where('user_id', '=', userId).where('revoked_at', 'is', null).where('expires_at', '>', now);

  return {
    async ping() {
      await sql`select 1`.execute(db);
    },
    async close() {
      await db.destroy();
    },

    async countUsers() {
      const row = await db
        .selectFrom('users')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .executeTakeFirstOrThrow();
      return Number(row.n);
    },
    async createUser(u, audit) {
      const row: UserRow = {
        id: u.id,
        name: u.name,
        name_key: u.nameKey,
        name_skeleton: u.nameSkeleton,
        password_hash: u.passwordHash,
        role: u.role,
        disabled: 0,
        created_at: u.now,
        updated_at: u.now,
      };
      try {
        if (audit) {
          await db.transaction().execute(async (trx) => {
            await trx.insertInto('users').values(row).execute();
            await insertAudit(trx, audit(toUser(row)));
          });
        } else {
          await db.insertInto('users').values(row).execute();
        }
      } catch (error) {
        if (isUniqueViolation(error)) throw nameTaken(error);
        throw error;
      }
      return toUser(row);
    },
    async createFirstUser(u) {
      try {
        // Insert-if-absent in one statement; two instances starting together on an empty store
        // both get here, and the unique name key turns the second insert away.
        const result = await sql`
          insert into users (id, name, name_key, name_skeleton, password_hash, role, disabled, created_at, updated_at)
          select ${u.id}, ${u.name}, ${u.nameKey}, ${u.nameSkeleton}, ${u.passwordHash}, ${u.role}, 0, cast(${u.now} as bigint), cast(${u.now} as bigint)
          where not exists (select 1 from users)`.execute(db);
        return Number(result.numAffectedRows ?? 0) === 1;
      } catch (error) {
        if (isUniqueViolation(error)) return false;
        throw error;
      }
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
      await db
        .updateTable('users')
        .set({ disabled: disabled ? 1 : 0, updated_at: now })
        .where('id', '=', id)
        .execute();
    },
    async setRole(id, role, now) {
      await db.updateTable('users').set({ role, updated_at: now }).where('id', '=', id).execute();
    },
    async deleteUser(id) {
      await db.deleteFrom('users').where('id', '=', id).execute();
    },
    async searchUsers({ q, after, limit }) {
      let query = db.selectFrom('users').selectAll();
      if (q !== undefined && q !== '') query = query.where(sql<boolean>`name_key like ${`%${likeEscape(q)}%`} escape ${'\\'}`);
      if (after) {
        query = query.where((eb) =>
          eb.or([eb('created_at', '>', after.createdAt), eb.and([eb('created_at', '=', after.createdAt), eb('name_key', '>', after.nameKey)])]),
        );
      }
      const rows = await query.orderBy('created_at').orderBy('name_key').limit(limit).execute();
      return rows.map(toUser);
    },
    updateUser(id, change, opts) {
      const set = {
        ...(change.role !== undefined ? { role: change.role } : {}),
        ...(change.disabled !== undefined ? { disabled: change.disabled ? 1 : 0 } : {}),
        ...(change.passwordHash !== undefined ? { password_hash: change.passwordHash } : {}),
      };
      return changeUser(
        id,
        opts,
        () => (change.role !== undefined && change.role !== 'admin') || change.disabled === true,
        // Nothing to set (ending an account's sessions): the account row stays as it is.
        async (trx) => {
          if (Object.keys(set).length > 0)
            await trx
              .updateTable('users')
              .set({ ...set, updated_at: opts.now })
              .where('id', '=', id)
              .execute();
        },
      );
    },
    removeUser(id, opts) {
      return changeUser(
        id,
        opts,
        () => true,
        (trx) => trx.deleteFrom('users').where('id', '=', id).execute(),
      );
    },

    async createSession(s, token, audit) {
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
            address: s.address ?? null,
            revoked_at: null,
            revoke_reason: null,
          })
          .execute();
        await insertAudit(trx, audit);
        await trx
          .insertInto('refresh_tokens')
          .values({
            token_hash: token.tokenHash,
            session_id: s.id,
            parent_hash: token.parentHash,
            created_at: s.createdAt,
            expires_at: token.expiresAt,
            used_at: null,
            child_enc: null,
          })
          .execute();
      });
    },
    async rotateRefreshToken(oldHash: string, next: NewRefreshToken & { childEnc?: string | null }, now: number): Promise<RotateResult> {
      return db.transaction().execute(async (trx) => {
        const token = await trx.selectFrom('refresh_tokens').selectAll().where('token_hash', '=', oldHash).executeTakeFirst();
        if (!token) return { outcome: 'invalid' };
        if (token.used_at !== null) return { outcome: 'reused', sessionId: token.session_id, usedAt: Number(token.used_at), childEnc: token.child_enc };
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
          .set({ used_at: now, child_enc: next.childEnc ?? null })
          .where('token_hash', '=', oldHash)
          .where('used_at', 'is', null)
          .executeTakeFirst();
        if (Number(claimed.numUpdatedRows) !== 1) {
          // The concurrent claim has committed (its row lock was what we waited for): read what
          // it left, so this request can be answered as its retry.
          const winner = await trx.selectFrom('refresh_tokens').select(['used_at', 'child_enc']).where('token_hash', '=', oldHash).executeTakeFirst();
          return { outcome: 'reused', sessionId: token.session_id, usedAt: Number(winner?.used_at ?? now), childEnc: winner?.child_enc ?? null };
        }
        await trx
          .insertInto('refresh_tokens')
          .values({
            token_hash: next.tokenHash,
            session_id: session.id,
            parent_hash: oldHash,
            created_at: now,
            expires_at: next.expiresAt,
            used_at: null,
            child_enc: null,
          })
          .execute();
        return { outcome: 'rotated', session: { ...toSession(session), lastUsedAt: now }, user: toUser(user) };
      });
    },
    async findRefreshToken(tokenHash): Promise<RefreshTokenRow | undefined> {
      const row = await db.selectFrom('refresh_tokens').selectAll().where('token_hash', '=', tokenHash).executeTakeFirst();
      return (
        row && {
          tokenHash: row.token_hash,
          sessionId: row.session_id,
          expiresAt: Number(row.expires_at),
          usedAt: row.used_at === null ? null : Number(row.used_at),
          childEnc: row.child_enc,
        }
      );
    },
    async findSession(id) {
      const row = await db.selectFrom('sessions').selectAll().where('id', '=', id).executeTakeFirst();
      return row && toSession(row);
    },
    async listActiveSessions(userId, now) {
      const rows = await activeSessions(userId, now).orderBy('created_at', 'desc').execute();
      return rows.map(toSession);
    },
    async revokeSession(id, reason, now, audit) {
      return db.transaction().execute(async (trx) => {
        const result = await trx
          .updateTable('sessions')
          .set({ revoked_at: now, revoke_reason: reason })
          .where('id', '=', id)
          .where('revoked_at', 'is', null)
          .executeTakeFirst();
        if (Number(result.numUpdatedRows) !== 1) return false;
        await insertAudit(trx, audit);
        await logRevocations(trx, [id], now);
        return true;
      });
    },
    async revokeUserSessions(userId, reason, now, opts = {}) {
      return db.transaction().execute(async (trx) => {
        const ids = await revokeAllIn(trx, userId, reason, now, opts.exceptSessionId);
        await insertAudit(trx, opts.audit?.(ids));
        await logRevocations(trx, ids, now);
        return ids;
      });
    },
    async revocationsAfter(cursor, since) {
      const toRevocation = (r: { session_id: string; revoked_at: number }) => ({ sessionId: r.session_id, revokedAt: Number(r.revoked_at) });
      if (cursor === undefined) {
        // The cursor first, then the rows up to it: whatever commits in between is read by the
        // next poll, never skipped.
        const top = await db
          .selectFrom('revocations')
          .select((eb) => eb.fn.max('seq').as('seq'))
          .executeTakeFirst();
        const newest = Number(top?.seq ?? 0);
        const rows = await db
          .selectFrom('revocations')
          .select(['session_id', 'revoked_at'])
          .where('seq', '<=', newest)
          .where('revoked_at', '>=', since)
          .execute();
        return { revocations: rows.map(toRevocation), cursor: newest, more: false };
      }
      const rows = await db
        .selectFrom('revocations')
        .select(['seq', 'session_id', 'revoked_at'])
        .where('seq', '>', cursor)
        .orderBy('seq')
        .limit(REVOCATION_BATCH)
        .execute();
      return {
        revocations: rows.map(toRevocation),
        cursor: rows.length > 0 ? Number(rows[rows.length - 1]?.seq) : cursor,
        more: rows.length === REVOCATION_BATCH,
      };
    },
    async pruneSessions(before) {
      return db.transaction().execute(async (trx) => {
        const ended = trx
          .selectFrom('sessions')
          .select('id')
          .where((eb) => eb.or([eb('expires_at', '<', before), eb('revoked_at', '<', before)]));
        await trx.deleteFrom('refresh_tokens').where('session_id', 'in', ended).execute();
        await trx.deleteFrom('revocations').where('revoked_at', '<', before).execute();
        const result = await trx
          .deleteFrom('sessions')
          .where((eb) => eb.or([eb('expires_at', '<', before), eb('revoked_at', '<', before)]))
          .executeTakeFirst();
        return Number(result.numDeletedRows);
      });
    },

    async listSigningKeys() {
      const rows = await db.selectFrom('signing_keys').selectAll().orderBy('generation').execute();
      return rows.map(toKey);
    },
    async createFirstSigningKey(k) {
      try {
        // One statement, so one snapshot: two instances starting together on an empty table both
        // compute the same generation, and its unique constraint turns the second insert away.
        const result = await sql`
          insert into signing_keys (kid, generation, alg, private_enc, public_jwk, created_at, publish_at, activate_at, retired_at, verify_until)
          select ${k.kid}, coalesce((select max(generation) from signing_keys), 0) + 1, ${k.alg}, ${k.privateEnc}, ${k.publicJwk},
            cast(${k.createdAt} as bigint), cast(${k.publishAt} as bigint), cast(${k.activateAt} as bigint), null, null
          where not exists (
            select 1 from signing_keys where alg = ${k.alg} and activate_at <= cast(${k.createdAt} as bigint)
              and (retired_at is null or retired_at > cast(${k.createdAt} as bigint)))`.execute(db);
        return Number(result.numAffectedRows ?? 0) === 1;
      } catch (error) {
        if (isUniqueViolation(error)) return false;
        throw error;
      }
    },
    async addSigningKey(k, supersedes) {
      try {
        await db.transaction().execute(async (trx) => {
          await trx.insertInto('signing_keys').values(fromKey(k)).execute();
          if (supersedes) {
            await trx
              .updateTable('signing_keys')
              .set({ retired_at: k.activateAt, verify_until: supersedes.verifyUntil })
              .where('kid', '=', supersedes.kid)
              .where((eb) => eb.or([eb('retired_at', 'is', null), eb('retired_at', '>', k.activateAt)]))
              .execute();
          }
        });
        return true;
      } catch (error) {
        if (isUniqueViolation(error)) return false;
        throw error;
      }
    },
    async retireSigningKey(kid, at, verifyUntil) {
      const result = await db
        .updateTable('signing_keys')
        .set({ retired_at: at, verify_until: verifyUntil })
        .where('kid', '=', kid)
        .where((eb) => eb.or([eb('retired_at', 'is', null), eb('retired_at', '>', at)]))
        .executeTakeFirst();
      return Number(result.numUpdatedRows) === 1;
    },
    async unretireSigningKey(kid, retiredAt) {
      const result = await db
        .updateTable('signing_keys')
        .set({ retired_at: null, verify_until: null })
        .where('kid', '=', kid)
        .where('retired_at', '=', retiredAt)
        .executeTakeFirst();
      return Number(result.numUpdatedRows) === 1;
    },
    async deleteSigningKey(kid) {
      const result = await db.deleteFrom('signing_keys').where('kid', '=', kid).executeTakeFirst();
      return Number(result.numDeletedRows) === 1;
    },
    async recordAudit(event) {
      await db.insertInto('audit_events').values(toAuditRow(event)).execute();
    },
    async listAudit({ userId, targetId, event, since, until, beforeId, limit }) {
      let query = db.selectFrom('audit_events').selectAll();
      if (targetId !== undefined) query = query.where('target_id', '=', targetId);
      if (userId !== undefined) query = query.where((eb) => eb.or([eb('actor_id', '=', userId), eb('target_id', '=', userId)]));
      if (event !== undefined) query = query.where('event', '=', event);
      if (since !== undefined) query = query.where('at', '>=', since);
      if (until !== undefined) query = query.where('at', '<', until);
      if (beforeId !== undefined) query = query.where('id', '<', beforeId);
      const rows = await query.orderBy('id', 'desc').limit(limit).execute();
      return rows.map((r) => fromAuditRow(r as Omit<AuditRow, 'id'> & { id: number }));
    },
    async pruneAudit(before) {
      const result = await db.deleteFrom('audit_events').where('at', '<', before).executeTakeFirst();
      return Number(result.numDeletedRows);
    },
  };
}
