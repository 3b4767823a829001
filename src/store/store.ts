/** What the services need from storage. One interface; SQLite and PostgreSQL implement it. */

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

export type RotateResult =
  | { outcome: 'rotated'; session: SessionRecord; user: UserRecord }
  /** The token was already used (at `usedAt`): a replay, or a concurrent refresh. */
  | { outcome: 'reused'; sessionId: string; usedAt: number }
  | { outcome: 'invalid' };

export interface Revocation {
  sessionId: string;
  revokedAt: number;
}

export interface Store {
  /** Resolves when the store answers a trivial query. */
  ping(): Promise<void>;
  close(): Promise<void>;

  countUsers(): Promise<number>;
  /** Throws `AuthError('name_taken')` when the name key exists. */
  createUser(user: NewUser): Promise<UserRecord>;
  findUserByNameKey(nameKey: string): Promise<UserRecord | undefined>;
  findUserById(id: string): Promise<UserRecord | undefined>;
  listUsers(): Promise<UserRecord[]>;
  setPasswordHash(id: string, hash: string, now: number): Promise<void>;
  setDisabled(id: string, disabled: boolean, now: number): Promise<void>;
  setRole(id: string, role: Role, now: number): Promise<void>;
  deleteUser(id: string): Promise<void>;

  createSession(session: Omit<SessionRecord, 'revokedAt'>, token: NewRefreshToken): Promise<void>;
  /**
   * Marks `oldHash` used and stores `next` in its place, atomically: of two concurrent calls with
   * the same token exactly one sees `rotated`. Refuses expired tokens, revoked or expired
   * sessions, and disabled or deleted users (`invalid`).
   */
  rotateRefreshToken(oldHash: string, next: NewRefreshToken, now: number): Promise<RotateResult>;
  findSession(id: string): Promise<SessionRecord | undefined>;
  listActiveSessions(userId: string, now: number): Promise<SessionRecord[]>;
  /** Revokes one session; false when it was not active. */
  revokeSession(id: string, reason: string, now: number): Promise<boolean>;
  /** Revokes every active session of a user; returns their ids. */
  revokeUserSessions(userId: string, reason: string, now: number): Promise<string[]>;
  /** Sessions revoked at or after `since`, for the in-memory revocation list. */
  revokedSince(since: number): Promise<Revocation[]>;
  /** Deletes sessions and refresh tokens that ended before `before`. */
  pruneSessions(before: number): Promise<number>;
}
