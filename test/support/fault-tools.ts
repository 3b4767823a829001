import { findPgBinDir } from './pg-cluster';
import { findRedisServer } from './redis-process';

/**
 * Whether initdb/pg_ctl and redis-server are installed, so a fault test file can choose
 * `describe` or `describe.skip` at load time. Under `CI=true` a missing tool throws instead:
 * `.ci/run` installs them, and CI must not skip the fault suite quietly.
 */
export function faultToolsPresent(): boolean {
  try {
    findPgBinDir();
    findRedisServer();
    return true;
  } catch (err) {
    if (process.env['CI'] === 'true') throw err;
    console.warn(`${(err as Error).message}: the fault tests are skipped`);
    return false;
  }
}
