/** What the services need from storage. One interface; SQLite and PostgreSQL implement it. */

import type { SigningKeyRecord } from './signing-key-record';

export type { SigningAlgorithm, SigningKeyRecord } from './signing-key-record';

export type Role = 'user' | 'admin';

export interface UserRecord {
  id: string;
  name: string;
  nameKey: string;
  passwordHash: string;
  role: Role;
  disabled: boolean;
  createdAt: number;
  updatedAt: number;
}

export interface NewUser {
  id: string;
  name: string;
  nameKey: string;
  /** The name's look-alike form (`nameSkeleton`); unique like the key. */
  nameSkeleton: string;
  passwordHash: string;
  role: Role;
  now: number;
}

export interface SessionRecord {
  id: string;
  userId: string;
  createdAt: number;
  lastUsedAt: number;
  expiresAt: number;
  userAgent: string | null;
  /** The client's address at login; null for sessions made before it was kept. */
  address: string | null;
  revokedAt: number | null;
}

export interface RefreshTokenRecord {
  tokenHash: string;
  sessionId: string;
  createdAt: number;
  expiresAt: number;
  usedAt: number | null;
}

export interface NewRefreshToken {
  tokenHash: string;
  parentHash: string | null;
  expiresAt: number;
}

/** A stored refresh token, for following a rotation chain (see {@link Store.findRefreshToken}). */
export interface RefreshTokenRow {
  tokenHash: string;
  sessionId: string;
  expiresAt: number;
  usedAt: number | null;
  /** The token that replaced it, encrypted under a key only this token's holder can derive. */
  childEnc: string | null;
}

export type RotateResult =
  | { outcome: 'rotated'; session: SessionRecord; user: UserRecord }
  /**
   * The token was already used (at `usedAt`): a replay, a concurrent refresh, or a retry whose
   * first answer was lost. `childEnc` is what the first use left for a retry to read.
   */
  | { outcome: 'reused'; sessionId: string; usedAt: number; childEnc: string | null }
  | { outcome: 'invalid' };

export interface Revocation {
  sessionId: string;
  revokedAt: number;
}

/** Revocations read from the log, and where the next read starts. */
export interface RevocationBatch {
  revocations: Revocation[];
  /** Pass back to {@link Store.revocationsAfter}; it follows the commit order of the log. */
  cursor: number;
  /** True when the batch was cut at its size limit: read again at once for the rest. */
  more: boolean;
}

/** One security event as the store keeps it (see services/audit.ts for the event names). */
export interface NewAuditEvent {
  at: number;
  event: string;
  /** Who did it: the signed-in account; null when nobody was (a failed login, the CLI). */
  actorId: string | null;
  /** Whom it concerned. */
  targetId: string | null;
  /** The target's name as stored (never a name as typed: people type passwords there). */
  targetName: string | null;
  address: string | null;
  userAgent: string | null;
  requestId: string | null;
  /** Stored as JSON; never a password, a token or a hash. */
  details: Record<string, unknown> | null;
}

export interface AuditEventRecord extends NewAuditEvent {
  /** Increasing in insert order: the paging key (newest first). */
  id: number;
}

export interface AuditQuery {
  /** Events whose actor or target this account is. */
  userId?: string;
  /** Events whose target this account is. */
  targetId?: string;
  event?: string;
  /** Inclusive, ms. */
  since?: number;
  /** Exclusive, ms. */
  until?: number;
  /** Only events older than this id (the cursor). */
  beforeId?: number;
  limit: number;
}

export interface UserQuery {
  /** A part of the name as compared (`nameKey` of what was typed). */
  q?: string;
  /** Only users after this one in the listing order (the cursor). */
  after?: { createdAt: number; nameKey: string };
  limit: number;
}

/** A change to an account by an admin (or the CLI); what is left out stays as it is. */
export interface UserChange {
  role?: Role;
  disabled?: boolean;
  passwordHash?: string;
}

export interface UserChangeOptions {
  now: number;
  /** Revokes every session of the user in the same transaction, with this reason (decided on the account as it was). */
  revokeReason?: string | ((before: UserRecord) => string | undefined);
  /** Refuse (`last_admin`) a change that would leave no enabled admin. */
  keepAnAdmin: boolean;
  /** The audit event of the change, written in the same transaction. */
  audit?: (before: UserRecord, revoked: string[]) => NewAuditEvent[];
}

export type UserChangeResult = { outcome: 'changed'; before: UserRecord; revoked: string[] } | { outcome: 'not_found' } | { outcome: 'last_admin' };

export interface Store {
  /** Resolves when the store answers a trivial query. */
  ping(): Promise<void>;
  close(): Promise<void>;

  countUsers(): Promise<number>;
  /**
   * Throws `AuthError('name_taken')` when the name key or the name skeleton exists. `audit`, when
   * given, is written in the same transaction.
   */
  createUser(user: NewUser, audit?: (user: UserRecord) => NewAuditEvent): Promise<UserRecord>;
  findUserByNameKey(nameKey: string): Promise<UserRecord | undefined>;
  findUserById(id: string): Promise<UserRecord | undefined>;
  listUsers(): Promise<UserRecord[]>;
  setPasswordHash(id: string, hash: string, now: number): Promise<void>;
  setDisabled(id: string, disabled: boolean, now: number): Promise<void>;
  setRole(id: string, role: Role, now: number): Promise<void>;
  deleteUser(id: string): Promise<void>;
  /** Users in the listing order (created, then name key), optionally those whose name key contains `q`. */
  searchUsers(query: UserQuery): Promise<UserRecord[]>;
  /**
   * Changes an account, revokes its sessions and writes the audit event, in one transaction. With
   * `keepAnAdmin`, a change that would leave no enabled admin is refused without effect: the check
   * and the write cannot race (PostgreSQL: an advisory lock taken first, held to commit; SQLite:
   * one writer at a time).
   */
  updateUser(id: string, change: UserChange, opts: UserChangeOptions): Promise<UserChangeResult>;
  /** Revokes the account's sessions, deletes it and writes the audit event, in one transaction (as {@link updateUser}). */
  removeUser(id: string, opts: UserChangeOptions): Promise<UserChangeResult>;

  /** Creates a session with its first refresh token, and writes `audit` in the same transaction. */
  createSession(
    session: Omit<SessionRecord, 'revokedAt' | 'address'> & { address?: string | null },
    token: NewRefreshToken,
    audit?: NewAuditEvent,
  ): Promise<void>;
  /**
   * Marks `oldHash` used and stores `next` in its place, atomically: of two concurrent calls with
   * the same token exactly one sees `rotated`. Refuses expired tokens, revoked or expired
   * sessions, and disabled or deleted users (`invalid`).
   */
  rotateRefreshToken(oldHash: string, next: NewRefreshToken & { childEnc?: string | null }, now: number): Promise<RotateResult>;
  findRefreshToken(tokenHash: string): Promise<RefreshTokenRow | undefined>;
  findSession(id: string): Promise<SessionRecord | undefined>;
  listActiveSessions(userId: string, now: number): Promise<SessionRecord[]>;
  /**
   * Revokes one session, and logs it (and writes `audit`, when given) in the same transaction;
   * false when it was not active (and then nothing is written).
   */
  revokeSession(id: string, reason: string, now: number, audit?: NewAuditEvent): Promise<boolean>;
  /**
   * Revokes every active session of a user (but `exceptSessionId`), logging each; returns their
   * ids. `audit`, when given, is written in the same transaction.
   */
  revokeUserSessions(
    userId: string,
    reason: string,
    now: number,
    opts?: { exceptSessionId?: string; audit?: (revoked: string[]) => NewAuditEvent },
  ): Promise<string[]>;
  /**
   * Revocations logged after `cursor`, in commit order. Without a cursor (at start-up): those
   * revoked at or after `since`, and the cursor of the newest. Entries are logged in commit order,
   * so a revocation whose transaction ran long is never skipped, whatever its `revokedAt`.
   */
  revocationsAfter(cursor: number | undefined, since: number): Promise<RevocationBatch>;
  /**
   * Creates the first admin only while there are no users at all; false when there were some
   * (another instance starting at the same moment made one first).
   */
  createFirstUser(user: NewUser): Promise<boolean>;
  /** Deletes sessions, refresh tokens and logged revocations that ended before `before`. */
  pruneSessions(before: number): Promise<number>;

  /** Every signing key, oldest generation first. */
  listSigningKeys(): Promise<SigningKeyRecord[]>;
  /**
   * Inserts `key` (its `generation` is ignored: the next free one is taken) only while no key of
   * `key.alg` signs at `key.createdAt`, in one statement; false when one does (another instance
   * starting at the same moment made it first). The unique generation turns the loser of a race away.
   */
  createFirstSigningKey(key: SigningKeyRecord): Promise<boolean>;
  /**
   * Inserts `key` with its `generation` and, in the same transaction, retires `supersedes` (when
   * given and not retired by then) at `key.activateAt`, verifying until `verifyUntil`. False when the
   * generation is taken: another process rotated at the same moment.
   */
  addSigningKey(key: SigningKeyRecord, supersedes?: { kid: string; verifyUntil: number }): Promise<boolean>;
  /** Sets `retiredAt`/`verifyUntil` of a key not retired by `at`; false when there is none such. */
  retireSigningKey(kid: string, at: number, verifyUntil: number): Promise<boolean>;
  /** Undoes a retirement planned for `retiredAt` (its successor was withdrawn); false when it was not so planned. */
  unretireSigningKey(kid: string, retiredAt: number): Promise<boolean>;
  /** Deletes a key; false when there was none. */
  deleteSigningKey(kid: string): Promise<boolean>;
  /** Writes one audit event on its own. */
  recordAudit(event: NewAuditEvent): Promise<void>;
  /** Audit events matching `query`, newest first. */
  listAudit(query: AuditQuery): Promise<AuditEventRecord[]>;
  /** Deletes audit events older than `before`; returns how many. */
  pruneAudit(before: number): Promise<number>;
}
