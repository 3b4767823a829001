#!/usr/bin/env node
import dotenv from 'dotenv';
import { systemClock } from '../clock';
import { ConfigError, loadStoreConfig } from '../config';
import { createPasswords } from '../services/passwords';
import { createRevocationPublisher } from '../services/redis-revocation-bus';
import { createUserAdmin } from '../services/users';
import { openStore } from '../store/open-store';
import type { Store } from '../store/store';
import { parseUsersArgs, USAGE } from './args';
import { type CliIo, describeFailure, runUsersCommand } from './user-commands';

/**
 * `npm run users -- <command>`: manages accounts straight in the store. It signs no tokens, so it
 * reads only the store and hashing settings and runs without JWT_SECRET. Sessions it ends are
 * logged as revoked in the store, where running servers find them by polling, and with
 * `REDIS_URL` set also published on the revocation bus, so they are refused at once.
 */
async function main(argv: readonly string[], io: CliIo): Promise<number> {
  const parsed = parseUsersArgs(argv);
  if ('problem' in parsed) {
    io.stderr.write(`${parsed.problem}\n${parsed.showUsage ? `\n${USAGE}` : ''}`);
    return 2;
  }
  if (parsed.command === 'help') {
    io.stdout.write(USAGE);
    return 0;
  }

  let store: Store | undefined;
  let publisher: ReturnType<typeof createRevocationPublisher> | undefined;
  try {
    dotenv.config({ quiet: true });
    const config = loadStoreConfig(process.env);
    store = await openStore(config.databaseUrl, { timeouts: config.storeTimeouts });
    if (config.redisUrl !== undefined) publisher = createRevocationPublisher(config.redisUrl, config.redisTimeout);
    const passwords = await createPasswords(config.argon2);
    await runUsersCommand(parsed, createUserAdmin({ store, passwords, clock: systemClock, ...(publisher ? { revocations: publisher } : {}) }), io);
    return 0;
  } catch (error) {
    const { message, exitCode } = error instanceof ConfigError ? { message: error.message, exitCode: 1 } : describeFailure(error);
    io.stderr.write(`${message}\n`);
    return exitCode;
  } finally {
    await publisher?.close();
    await store?.close();
  }
}

// A reader that stops early (`npm run users -- list | head`) is no failure worth a stack trace.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code !== 'EPIPE') throw error;
  process.exit(process.exitCode ?? 0);
});

main(process.argv.slice(2), { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr }).then(
  (code) => {
    // exitCode rather than exit(): output still queued on a pipe gets written.
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`Failed: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  },
);
