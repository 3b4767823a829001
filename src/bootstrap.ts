import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Config } from './config';
import type { AuthService } from './services/auth';
import type { Logger } from './services/logger';
import type { Store } from './store/store';

const SECRET_FILE = 'jwt-secret';

/**
 * Returns `config` with a JWT secret. Outside production, when `JWT_SECRET` is unset, a random one
 * is made once and kept in the data directory (mode 0600) so tokens survive a restart.
 */
export function resolveSecret(config: Config, logger: Logger): Config {
  if (config.jwtSecret !== undefined) return config;
  if (config.env === 'production') throw new Error('JWT_SECRET is required when NODE_ENV=production');
  const file = path.join(config.dataDir, SECRET_FILE);
  let secret: string;
  try {
    secret = fs.readFileSync(file, 'utf8').trim();
  } catch {
    fs.mkdirSync(config.dataDir, { recursive: true });
    secret = randomBytes(48).toString('base64url');
    fs.writeFileSync(file, `${secret}\n`, { mode: 0o600, flag: 'wx' });
  }
  logger.warn({ file }, 'JWT_SECRET is not set: using a generated secret kept in the data directory (set JWT_SECRET in production)');
  return Object.freeze({ ...config, jwtSecret: secret });
}

function madeElsewhere(logger: Logger): void {
  logger.info({ event: 'admin_exists' }, 'another process created the first account while this one started');
}

/**
 * On first start (no users at all) creates the admin from ADMIN_NAME / ADMIN_PASSWORD. Outside
 * production a missing password is generated and printed once; in production no admin is made
 * without one, and the log says how to add one. An existing store is never touched. Safe when
 * several instances start at once on an empty store: one creates the admin, the others see that
 * it exists (and print no password that would not work).
 */
export async function ensureAdmin(config: Config, store: Store, auth: AuthService, logger: Logger, print: (line: string) => void): Promise<void> {
  if ((await store.countUsers()) > 0) return;
  let password = config.adminPassword;
  if (password === undefined) {
    if (config.env === 'production') {
      logger.warn(
        { event: 'no_admin' },
        'No users exist and ADMIN_PASSWORD is not set, so no admin was created. Add one with: npm run users -- add <name> --role admin',
      );
      return;
    }
    password = randomBytes(18).toString('base64url');
    if (!(await auth.addFirstUser(config.adminName, password, 'admin'))) return madeElsewhere(logger);
    // Printed to the terminal once, never logged: logs are kept and shipped, a terminal is not.
    print(
      `\nCreated the admin account.\n  name:     ${config.adminName}\n  password: ${password}\nIt will not be shown again; change it with: npm run users -- set-password ${config.adminName}\n`,
    );
    return;
  }
  if (!(await auth.addFirstUser(config.adminName, password, 'admin'))) return madeElsewhere(logger);
  logger.info({ event: 'admin_created', name: config.adminName }, 'created the admin account from ADMIN_NAME / ADMIN_PASSWORD');
}
