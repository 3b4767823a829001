import type { Role } from '../store/store';

/** A command the users CLI understood. */
export type UsersCommand =
  | { command: 'help' }
  | { command: 'add'; name: string; role: Role }
  | { command: 'list'; json: boolean }
  | { command: 'set-password' | 'disable' | 'enable' | 'delete'; name: string };

/** A command line the CLI refuses; `showUsage` adds the usage text after the message. */
export interface ArgsProblem {
  problem: string;
  showUsage: boolean;
}

export const USAGE = `Usage: npm run users -- <command> [options]

Commands:
  add NAME [--role user|admin]  Add a user (role user unless told); asks for the password
  list [--json]                 List the users: name, role, disabled, created
  set-password NAME             Set a new password; ends all the user's sessions
  disable NAME                  Refuse the user's logins; ends all their sessions
  enable NAME                   Allow the user's logins again
  delete NAME                   Delete the user; ends all their sessions
  --help                        Show this text

Passwords are asked for without echo (twice) when stdin is a terminal; otherwise the
first line of stdin is the password, exactly as given up to the line break:
  printf '%s\\n' "$PASSWORD" | npm run users -- set-password alice
They are never taken from the command line, where the shell history and other users
would see them. A NAME that starts with "-" goes after "--": delete -- -bob

Settings come from the environment and .env, as for the server: DATABASE_URL (or
DATA_DIR) and ARGON2_*. JWT_SECRET is not needed.

Exit status: 0 done; 1 refused (unknown name, name taken, weak password, ...); 2 usage.
`;

export const PASSWORD_ARGUMENT_REFUSED =
  'Passwords are not taken from the command line, where the shell history and other users would see them. ' +
  'Type it at the prompt, or give it as the first line of stdin (printf \'%s\\n\' "$PASSWORD" | npm run users -- ...).';

// Spellings a password option might take (with `-psecret` as a short option with its value glued
// on); each is refused rather than echoed back as an unknown option.
const PASSWORD_OPTION = /^(-p.*|--?(pw|pass|passwd|password|new-password)(=.*)?)$/is;

const NAMED_COMMANDS = new Set(['add', 'set-password', 'disable', 'enable', 'delete']);

/**
 * Parses the CLI's arguments (those after the script name). Refuses, before anything else, any
 * argument that may be a password: a password option, or a positional beyond NAME. Never echoes
 * the value of such an argument.
 */
export function parseUsersArgs(argv: readonly string[]): UsersCommand | ArgsProblem {
  const usage = (problem: string): ArgsProblem => ({ problem, showUsage: true });
  const positionals: string[] = [];
  const options = new Map<string, string | true>();
  let help = false;
  let afterDashes = false;

  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i] as string;
    if (afterDashes || !arg.startsWith('-') || arg === '-') {
      positionals.push(arg);
      continue;
    }
    if (arg === '--') {
      afterDashes = true;
      continue;
    }
    if (PASSWORD_OPTION.test(arg)) return { problem: PASSWORD_ARGUMENT_REFUSED, showUsage: false };
    const eq = arg.indexOf('=');
    const key = eq === -1 ? arg : arg.slice(0, eq);
    if (key === '--help' || key === '-h') {
      help = true;
    } else if (key === '--json') {
      if (eq !== -1) return usage('--json takes no value.');
      options.set('json', true);
    } else if (key === '--role') {
      const value = eq === -1 ? argv[++i] : arg.slice(eq + 1);
      if (value === undefined) return usage('--role needs a value: user or admin.');
      options.set('role', value);
    } else {
      return usage(`Unknown option ${key}.`);
    }
  }

  const [command, name, ...extra] = positionals;
  // A second positional after NAME is most likely a password typed on the command line.
  if (command !== undefined && NAMED_COMMANDS.has(command) && extra.length > 0) {
    return { problem: PASSWORD_ARGUMENT_REFUSED, showUsage: false };
  }
  if (help) return { command: 'help' };
  if (command === undefined) return usage('No command given.');

  const role = options.get('role');
  if (role !== undefined && command !== 'add') return usage(`--role is an option of add only.`);
  if (options.has('json') && command !== 'list') return usage(`--json is an option of list only.`);

  if (command === 'list') {
    if (name !== undefined) return usage('list takes no NAME.');
    return { command: 'list', json: options.has('json') };
  }
  if (!NAMED_COMMANDS.has(command)) return usage(`Unknown command "${command}".`);
  if (name === undefined) return usage(`${command} needs a NAME.`);
  if (command === 'add') {
    if (role !== undefined && role !== 'user' && role !== 'admin') return usage('--role must be user or admin.');
    return { command: 'add', name, role: role ?? 'user' };
  }
  return { command: command as 'set-password' | 'disable' | 'enable' | 'delete', name };
}
