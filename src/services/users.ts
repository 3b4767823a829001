import type { Clock } from '../clock';
import { AuthError } from '../errors';
import type { NewUser, Role, Store, UserRecord } from '../store/store';
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

/** Managing accounts: what the CLI, first start and sign-up share. Needs no token secret. */
export interface UserAdmin {
  listUsers(): Promise<UserRecord[]>;
  /**
   * Creates a user; checks name and password policy. Throws `name_taken` for a name in use, or
   * one that looks like a name in use (the same UTS #39 skeleton).
   */
  addUser(name: string, password: string, role: Role, client?: string): Promise<PublicUser>;
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

/** The error for a name no account has. */
export const userNotFound = (name: string): AuthError => new AuthError('user_not_found', `No user is named "${name}".`);

export function createUserAdmin(deps: UserAdminDeps): UserAdmin {
  const { store, passwords, clock, revocations } = deps;

  const revokeAll = async (userId: string, reason: string) => {
    const now = clock.now();
    const ids = await store.revokeUserSessions(userId, reason, now);
    for (const id of ids) revocations?.add(id, now);
    return ids.length;
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

  return {
    listUsers: () => store.listUsers(),

    addUser: async (name, password, role, client) => toPublicUser(await store.createUser(await newUser(name, password, role, client))),

    async addFirstUser(name, password, role) {
      const user = await newUser(name, password, role);
      return (await store.createFirstUser(user)) ? toPublicUser(user) : undefined;
    },

    findUser: (name) => store.findUserByNameKey(nameKey(name)),

    async setPassword(name, password) {
      const user = await mustFind(name);
      checkPasswordPolicy(password, '/password', { name: user.name });
      await store.setPasswordHash(user.id, await passwords.hash(password), clock.now());
      return { user: toPublicUser(user), sessionsEnded: await revokeAll(user.id, 'password_reset') };
    },

    async setDisabled(name, disabled) {
      const user = await mustFind(name);
      await store.setDisabled(user.id, disabled, clock.now());
      return { user: toPublicUser(user), sessionsEnded: disabled ? await revokeAll(user.id, 'user_disabled') : 0 };
    },

    async deleteUser(name) {
      const user = await mustFind(name);
      // Revoked first, and the sessions kept: servers polling the store still see the revocation.
      const sessionsEnded = await revokeAll(user.id, 'user_deleted');
      await store.deleteUser(user.id);
      return { user: toPublicUser(user), sessionsEnded };
    },
  };
}
