import { AuthError, isAuthError } from '../errors';
import { checkName } from '../services/names';
import { checkPasswordPolicy, MAX_PASSWORD_BYTES } from '../services/passwords';
import { type UserAdmin, userNotFound } from '../services/users';
import type { UsersCommand } from './args';
import { CliFailure, createHiddenPrompt, readFirstLine } from './read-password';

/** The streams the CLI talks through; the entry passes the process's own. */
export interface CliIo {
  stdin: NodeJS.ReadStream;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

/**
 * Reads a new password for the user `name`: on a terminal it is asked for twice without echo (and
 * checked against the policy before the second time, so a weak one need not be typed again);
 * otherwise it is the first line of stdin (checked when the user is added or changed).
 */
export async function readNewPassword(io: CliIo, name: string): Promise<string> {
  if (!io.stdin.isTTY) return readFirstLine(io.stdin, MAX_PASSWORD_BYTES);
  const prompt = createHiddenPrompt(io.stdin, io.stderr);
  try {
    const password = await prompt.ask('New password: ');
    checkPasswordPolicy(password, '/password', { name });
    const again = await prompt.ask('Type it again: ');
    if (again !== password) throw new CliFailure('The two passwords differ; nothing was changed.');
    return password;
  } finally {
    prompt.close();
  }
}

const plural = (n: number, one: string) => `${n} ${one}${n === 1 ? '' : 's'}`;

const nameTaken = (name: string) => new CliFailure(`A user named "${name}" exists already.`);

function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => [...(r[i] ?? '')].length))) ?? [];
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i] ?? 0))).join('  ')).join('\n');
}

/**
 * Runs one command against `admin`, writing what it did to `io.stdout`. Expected refusals throw
 * a {@link CliFailure} or an {@link AuthError} whose message is fit to show. Nothing written
 * contains a password or a hash.
 */
export async function runUsersCommand(cmd: Exclude<UsersCommand, { command: 'help' }>, admin: UserAdmin, io: CliIo): Promise<void> {
  const say = (line: string) => io.stdout.write(`${line}\n`);
  switch (cmd.command) {
    case 'list': {
      const users = await admin.listUsers();
      if (cmd.json) {
        // The shape GET /users answers with, so scripts can use either.
        const body = users.map((u) => ({ id: u.id, name: u.name, role: u.role, disabled: u.disabled, created_at: new Date(u.createdAt).toISOString() }));
        say(JSON.stringify(body, null, 2));
      } else if (users.length === 0) {
        say('No users yet. Add one with: npm run users -- add NAME --role admin');
      } else {
        const rows = users.map((u) => [u.name, u.role, u.disabled ? 'yes' : 'no', new Date(u.createdAt).toISOString()]);
        say(table([['NAME', 'ROLE', 'DISABLED', 'CREATED'], ...rows]));
      }
      return;
    }
    case 'add': {
      // Refuse a bad or taken name before the password is typed; the store still decides races.
      checkName(cmd.name);
      if (await admin.findUser(cmd.name)) throw nameTaken(cmd.name);
      const password = await readNewPassword(io, cmd.name);
      try {
        const user = await admin.addUser(cmd.name, password, cmd.role);
        say(`Added user ${user.name} (${user.role})`);
      } catch (error) {
        // Taken since the look above, or refused as a look-alike of another name (UTS #39).
        if (isAuthError(error, 'name_taken')) {
          throw (await admin.findUser(cmd.name)) ? nameTaken(cmd.name) : new CliFailure(`A user whose name looks like "${cmd.name}" exists already.`);
        }
        throw error;
      }
      return;
    }
    case 'set-password': {
      const existing = await admin.findUser(cmd.name);
      if (!existing) throw userNotFound(cmd.name);
      const password = await readNewPassword(io, existing.name);
      const { user, sessionsEnded } = await admin.setPassword(cmd.name, password);
      say(`Set a new password for ${user.name}; ended ${plural(sessionsEnded, 'session')}`);
      return;
    }
    case 'disable': {
      const { user, sessionsEnded } = await admin.setDisabled(cmd.name, true);
      say(`Disabled user ${user.name}; ended ${plural(sessionsEnded, 'session')}`);
      return;
    }
    case 'enable': {
      const { user } = await admin.setDisabled(cmd.name, false);
      say(`Enabled user ${user.name}`);
      return;
    }
    case 'delete': {
      const { user, sessionsEnded } = await admin.deleteUser(cmd.name);
      say(`Deleted user ${user.name}; ended ${plural(sessionsEnded, 'session')}`);
      return;
    }
  }
}

/** The message and exit status for an error a command threw; unexpected errors give status 1. */
export function describeFailure(error: unknown): { message: string; exitCode: number } {
  if (error instanceof CliFailure) return { message: error.message, exitCode: error.exitCode };
  if (error instanceof AuthError) return { message: error.message, exitCode: 1 };
  // Only the message: drivers keep row values in other fields (pg's `detail`), which may hold a hash.
  return { message: `Failed: ${error instanceof Error ? error.message : String(error)}`, exitCode: 1 };
}
