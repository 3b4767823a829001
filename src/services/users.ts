import type { Clock } from '../clock';
import { AuthError } from '../errors';
import type { NewAuditEvent, NewUser, Role, Store, UserChangeOptions, UserChangeResult, UserRecord } from '../store/store';
import { type AuditEventName, auditEvent, type RequestMeta } from './audit';
import { checkName, nameKey, nameSkeleton } from './names';
import { checkPasswordPolicy, type Passwords } from './passwords';
import type { RevocationList } from './revocations';
import { randomId } from './tokens';

export interface PublicUser {
  id: string;
  name: string;
  role: Role;
}

/** What a change to an account did: the account as stored, and how many sessions it ended. */
export interface UserChange {
  user: PublicUser;
  sessionsEnded: number;
}

/** An admin's change to an account through the API; what is left out stays as it is. */
export interface AccountChange {
  role?: Role;
  disabled?: boolean;
}

/** A page of the user listing, and the user the next page starts after. */
export interface UserPage {
  users: UserRecord[];
  next: { createdAt: number; nameKey: string } | undefined;
}

/**
 * Managing accounts: what the CLI, first start, sign-up and the admin operations share. Needs no
 * token secret. Every change is written to the audit trail in its own transaction; the verbs by
 * id (the API's) refuse to take away the last enabled admin (`last_admin`), the verbs by name
 * (the CLI's, the operator's recovery path) do not.
 */
export interface UserAdmin {
  listUsers(): Promise<UserRecord[]>;
  /** A page of users in the listing order, optionally those whose name contains `q` (case and Unicode form ignored). */
  searchUsers(query: { q?: string; after?: { createdAt: number; nameKey: string }; limit: number }): Promise<UserPage>;
  /**
   * Creates a user; checks name and password policy. Throws `name_taken` for a name in use, or
   * one that looks like a name in use (the same UTS #39 skeleton). With `signup`, the `signup`
   * audit event is written with it.
   */
  addUser(name: string, password: string, role: Role, client?: string, signup?: RequestMeta): Promise<PublicUser>;
  /**
   * Creates a user only while the store has none at all (the first admin), atomically; undefined
   * when some user existed (another instance starting at the same moment made it first).
   */
  addFirstUser(name: string, password: string, role: Role): Promise<PublicUser | undefined>;
  /** Looks a user up by name as compared (case and Unicode form ignored). */
  findUser(name: string): Promise<UserRecord | undefined>;
  /** Sets a new password and ends all the user's sessions. Throws `user_not_found`. */
  setPassword(name: string, password: string): Promise<UserChange>;
  /** Disabling ends all the user's sessions; enabling ends none. Throws `user_not_found`. */
  setDisabled(name: string, disabled: boolean): Promise<UserChange>;
  /** Ends all the user's sessions, then deletes the user. Throws `user_not_found`. */
  deleteUser(name: string): Promise<UserChange>;

  /**
   * An admin changes an account's role or disabled flag. A new role, or disabling, ends all its
   * sessions. Throws `user_not_found`, or `last_admin` when no enabled admin would be left.
   */
  changeAccount(id: string, change: AccountChange, meta: RequestMeta): Promise<UserChange & { user: UserRecord }>;
  /**
   * An admin makes an account with a role (name and password rules as at sign-up, which may be
   * closed). Throws `name_taken` or `weak_password`. Written as `user_created`, in the same
   * transaction.
   */
  createAccount(name: string, password: string, role: Role, meta: RequestMeta, client?: string): Promise<UserRecord>;
  /** An admin sets an account's password (policy applies); ends all its sessions. */
  setPasswordById(id: string, password: string, meta: RequestMeta): Promise<UserChange>;
  /** An admin deletes an account (its sessions end first). Throws `user_not_found` or `last_admin`. */
  deleteUserById(id: string, meta: RequestMeta): Promise<UserChange>;
  /** An admin ends every session of an account. Throws `user_not_found`. */
  endUserSessions(id: string, meta: RequestMeta): Promise<UserChange>;
}

export interface UserAdminDeps {
  store: Store;
  passwords: Passwords;
  clock: Clock;
  /**
   * The running server's list, told at once of sessions ended in this process. Other processes
   * (the CLI) leave it out: the revocation lands in the store, and servers learn of it by polling.
   */
  revocations?: Pick<RevocationList, 'add'>;
}

export const toPublicUser = (u: { id: string; name: string; role: Role }): PublicUser => ({ id: u.id, name: u.name, role: u.role });

/** The error for an id no account has (the admin operations). */
export const userIdNotFound = (): AuthError => new AuthError('user_not_found', 'No such user.');

/** The CLI acts as nobody signed in; its events say so. */
const CLI: RequestMeta = { actorId: null };
const VIA_CLI = { via: 'cli' } as const;

/** The error for a name no account has. */
export const userNotFound = (name: string): AuthError => new AuthError('user_not_found', `No user is named "${name}".`);

export function createUserAdmin(deps: UserAdminDeps): UserAdmin {
  const { store, passwords, clock, revocations } = deps;

  const tell = (ids: string[], now: number) => {
    for (const id of ids) revocations?.add(id, now);
  };

  /** A new account as the store takes it, once the name and password pass their policies. */
  const newUser = async (name: string, password: string, role: Role, client?: string): Promise<NewUser> => {
    checkName(name, '/body/name');
    checkPasswordPolicy(password, '/body/password', { name });
    const passwordHash = await passwords.hash(password, client);
    return { id: randomId(), name, nameKey: nameKey(name), nameSkeleton: nameSkeleton(name), passwordHash, role, now: clock.now() };
  };

  const mustFind = async (name: string) => {
    const user = await store.findUserByNameKey(nameKey(name));
    if (!user) throw userNotFound(name);
    return user;
  };

  /** The store's answer as the caller's: the account as it was, or the refusal. */
  const settle = (result: UserChangeResult, now: number): { before: UserRecord; revoked: string[] } => {
    if (result.outcome === 'not_found') throw userIdNotFound();
    if (result.outcome === 'last_admin') {
      throw new AuthError('last_admin', 'This would leave no enabled admin: make another account an admin first.');
    }
    tell(result.revoked, now);
    return result;
  };

  /** One event of a change to `before`, by `meta`'s actor, with how many sessions it ended. */
  const eventOf = (name: AuditEventName, at: number, meta: RequestMeta, before: UserRecord, details: Record<string, unknown>): NewAuditEvent =>
    auditEvent(name, at, meta, { targetId: before.id, targetName: before.name, details });

  const change = async (id: string, opts: Omit<UserChangeOptions, 'now'>, run: 'update' | 'remove', update = {}): Promise<UserChange> => {
    const now = clock.now();
    const options = { ...opts, now };
    const result = run === 'update' ? await store.updateUser(id, update, options) : await store.removeUser(id, options);
    const { before, revoked } = settle(result, now);
    return { user: toPublicUser(before), sessionsEnded: revoked.length };
  };

  const byName = async (name: string, run: (user: UserRecord) => Promise<UserChange>) => {
    const user = await mustFind(name);
    try {
      return await run(user);
    } catch (error) {
      // Deleted between the look-up and the change: the name names no user any more.
      if (error instanceof AuthError && error.code === 'user_not_found') throw userNotFound(name);
      throw error;
    }
  };

  return {
    listUsers: () => store.listUsers(),

    async searchUsers({ q, after, limit }) {
      // One more than asked tells whether there is a next page.
      const rows = await store.searchUsers({ ...(q !== undefined && q !== '' ? { q: nameKey(q) } : {}), ...(after ? { after } : {}), limit: limit + 1 });
      const users = rows.slice(0, limit);
      const last = users[users.length - 1];
      return { users, next: rows.length > limit && last ? { createdAt: last.createdAt, nameKey: last.nameKey } : undefined };
    },

    async addUser(name, password, role, client, signup) {
      const user = await newUser(name, password, role, client);
      const audit = signup && ((u: UserRecord) => auditEvent('signup', u.createdAt, { ...signup, actorId: u.id }, { targetId: u.id, targetName: u.name }));
      return toPublicUser(await store.createUser(user, audit || undefined));
    },

    async createAccount(name, password, role, meta, client) {
      const user = await newUser(name, password, role, client);
      return store.createUser(user, (u) => auditEvent('user_created', u.createdAt, meta, { targetId: u.id, targetName: u.name, details: { role: u.role } }));
    },

    async addFirstUser(name, password, role) {
      const user = await newUser(name, password, role);
      return (await store.createFirstUser(user)) ? toPublicUser(user) : undefined;
    },

    findUser: (name) => store.findUserByNameKey(nameKey(name)),

    setPassword: (name, password) =>
      byName(name, async (user) => {
        checkPasswordPolicy(password, '/password', { name: user.name });
        const passwordHash = await passwords.hash(password);
        return change(
          user.id,
          {
            keepAnAdmin: false,
            revokeReason: 'password_reset',
            audit: (before, revoked) => [eventOf('password_set_by_admin', clock.now(), CLI, before, { ...VIA_CLI, sessions_ended: revoked.length })],
          },
          'update',
          { passwordHash },
        );
      }),

    setDisabled: (name, disabled) =>
      byName(name, (user) =>
        change(
          user.id,
          {
            keepAnAdmin: false,
            revokeReason: () => (disabled ? 'user_disabled' : undefined),
            audit: (before, revoked) =>
              before.disabled === disabled
                ? []
                : [eventOf(disabled ? 'user_disabled' : 'user_enabled', clock.now(), CLI, before, { ...VIA_CLI, sessions_ended: revoked.length })],
          },
          'update',
          { disabled },
        ),
      ),

    deleteUser: (name) =>
      byName(name, (user) =>
        change(
          user.id,
          {
            keepAnAdmin: false,
            revokeReason: 'user_deleted',
            audit: (before, revoked) => [eventOf('user_deleted', clock.now(), CLI, before, { ...VIA_CLI, sessions_ended: revoked.length })],
          },
          'remove',
        ),
      ),

    async changeAccount(id, wanted, meta) {
      const now = clock.now();
      const roleChanges = (u: UserRecord) => wanted.role !== undefined && wanted.role !== u.role;
      const disabling = (u: UserRecord) => wanted.disabled === true && !u.disabled;
      const result = await store.updateUser(id, wanted, {
        now,
        keepAnAdmin: true,
        // A new role or a disabled account: the tokens it holds say otherwise, so they end now.
        revokeReason: (u) => (disabling(u) ? 'user_disabled' : roleChanges(u) ? 'role_changed' : undefined),
        audit: (before, revoked) => {
          const events: NewAuditEvent[] = [];
          const ended = { sessions_ended: revoked.length };
          if (roleChanges(before)) events.push(eventOf('role_changed', now, meta, before, { from: before.role, to: wanted.role, ...ended }));
          if (wanted.disabled !== undefined && wanted.disabled !== before.disabled) {
            events.push(eventOf(wanted.disabled ? 'user_disabled' : 'user_enabled', now, meta, before, ended));
          }
          return events;
        },
      });
      const { before, revoked } = settle(result, now);
      const user: UserRecord = { ...before, role: wanted.role ?? before.role, disabled: wanted.disabled ?? before.disabled };
      return { user, sessionsEnded: revoked.length };
    },

    async setPasswordById(id, password, meta) {
      const target = await store.findUserById(id);
      if (!target) throw userIdNotFound();
      checkPasswordPolicy(password, '/body/password', { name: target.name });
      const passwordHash = await passwords.hash(password, meta.address ?? undefined);
      return change(
        id,
        {
          keepAnAdmin: false,
          revokeReason: 'password_reset',
          audit: (before, revoked) => [eventOf('password_set_by_admin', clock.now(), meta, before, { sessions_ended: revoked.length })],
        },
        'update',
        { passwordHash },
      );
    },

    deleteUserById: (id, meta) =>
      change(
        id,
        {
          keepAnAdmin: true,
          revokeReason: 'user_deleted',
          audit: (before, revoked) => [eventOf('user_deleted', clock.now(), meta, before, { sessions_ended: revoked.length })],
        },
        'remove',
      ),

    endUserSessions: (id, meta) =>
      change(
        id,
        {
          keepAnAdmin: false,
          revokeReason: 'ended_by_admin',
          audit: (before, revoked) => [eventOf('sessions_ended_by_admin', clock.now(), meta, before, { sessions_ended: revoked.length })],
        },
        'update',
      ),
  };
}
