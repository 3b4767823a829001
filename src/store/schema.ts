import type { Generated } from 'kysely';

/** Timestamps are milliseconds since the epoch; flags are 0/1, so SQLite and PostgreSQL agree. */
export interface UsersTable {
  id: string;
  name: string;
  /** The name as compared: Unicode NFKC, case-folded. Unique. */
  name_key: string;
  /**
   * The name as compared for looking alike (UTS #39 skeleton, see `nameSkeleton`). Unique; null
   * only for accounts made before it existed whose skeleton an older account already had.
   */
  name_skeleton: string | null;
  password_hash: string;
  role: 'user' | 'admin';
  disabled: number;
  created_at: number;
  updated_at: number;
}

export interface SessionsTable {
  id: string;
  user_id: string;
  created_at: number;
  last_used_at: number;
  /** The absolute end of the session, however often it is refreshed. */
  expires_at: number;
  user_agent: string | null;
  /** The client's address at login (migration 0006; null for older sessions). */
  address: string | null;
  revoked_at: number | null;
  revoke_reason: string | null;
}

export interface RefreshTokensTable {
  /** SHA-256 of the token, hex: the token itself is never stored. */
  token_hash: string;
  session_id: string;
  parent_hash: string | null;
  created_at: number;
  expires_at: number;
  used_at: number | null;
  /**
   * The token that replaced this one, encrypted with a key derived from this token itself, so
   * only a holder of this token can read it (a retried refresh gets the same answer again).
   */
  child_enc: string | null;
}

/** Every revocation, in commit order (`seq`): what instances poll to learn of them. */
export interface RevocationsTable {
  seq: Generated<number>;
  session_id: string;
  revoked_at: number;
}

/** Signing keys shared by every instance (see `SigningKeyRecord`); timestamps in ms. */
export interface SigningKeysTable {
  kid: string;
  generation: number;
  alg: 'HS256' | 'ES256' | 'EdDSA';
  private_enc: string;
  public_jwk: string | null;
  created_at: number;
  publish_at: number;
  activate_at: number;
  retired_at: number | null;
  verify_until: number | null;
}

/** The audit trail: one row per security event, newest by `id` (migration 0006). */
export interface AuditEventsTable {
  id: Generated<number>;
  at: number;
  event: string;
  actor_id: string | null;
  target_id: string | null;
  target_name: string | null;
  address: string | null;
  user_agent: string | null;
  request_id: string | null;
  /** JSON; never a password, a token or a hash. */
  details: string | null;
}

export interface Database {
  audit_events: AuditEventsTable;
  users: UsersTable;
  sessions: SessionsTable;
  refresh_tokens: RefreshTokensTable;
  revocations: RevocationsTable;
  signing_keys: SigningKeysTable;
  schema_info?: { id: Generated<number> };
}
