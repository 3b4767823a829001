import dotenv from 'dotenv';
import { resolveSecret } from '../bootstrap';
import { systemClock } from '../clock';
import { ConfigError, loadConfig } from '../config';
import { publishKeyChange } from '../services/redis-revocation-bus';
import { createKeyring, type KeyInfo, keyInfo, type Keyring, KeyringError } from '../services/signing-keys';
import { openStore } from '../store/open-store';
import type { Store } from '../store/store';

export const KEYS_USAGE = `Usage: npm run keys -- <command> [options]

Commands:
  list [--json]             The signing keys: kid, algorithm, state, when they sign and verify
  rotate [--now]            Make a new key of JWT_ALGORITHM, published now; it signs from
                            JWT_KEY_PUBLISH_LEAD later (at once with --now), and the current
                            key retires then (its tokens verify until they expire)
  retire KID                Stop a key signing now (a next key is withdrawn); refused for the
                            only key that signs: rotate instead
  remove KID [--force]      Delete a key; refused while tokens it signed may be valid, unless
                            --force (they are refused at once: use it for a leaked key)
  --help                    Show this text

Settings come from the environment and .env, as for the server (JWT_SECRET, JWT_ALGORITHM,
DATABASE_URL, ...). With REDIS_URL set, running servers hear of a change at once; otherwise
within REVOCATION_POLL_INTERVAL.

Exit status: 0 done; 1 refused; 2 usage.
`;

export type KeysCommand =
  | { command: 'help' }
  | { command: 'list'; json: boolean }
  | { command: 'rotate'; now: boolean }
  | { command: 'retire'; kid: string }
  | { command: 'remove'; kid: string; force: boolean };

/** Parses the keys CLI's arguments; a string is the usage problem. */
export function parseKeysArgs(argv: readonly string[]): KeysCommand | string {
  const flags = new Set(argv.filter((a) => a.startsWith('-')));
  const positionals = argv.filter((a) => !a.startsWith('-'));
  if (flags.has('--help') || flags.has('-h')) return { command: 'help' };
  const [command, kid, ...extra] = positionals;
  const allowed: Record<string, string[]> = { list: ['--json'], rotate: ['--now'], retire: [], remove: ['--force'] };
  if (command === undefined) return 'No command given.';
  const options = allowed[command];
  if (options === undefined) return `Unknown command "${command}".`;
  for (const f of flags) if (!options.includes(f)) return `Unknown option ${f} for ${command}.`;
  const wantsKid = command === 'retire' || command === 'remove';
  if (extra.length > 0 || (!wantsKid && kid !== undefined)) return `Too many arguments for ${command}.`;
  if (wantsKid && kid === undefined) return `${command} needs a KID (see: npm run keys -- list).`;
  if (command === 'list') return { command, json: flags.has('--json') };
  if (command === 'rotate') return { command, now: flags.has('--now') };
  if (command === 'retire') return { command, kid: kid as string };
  return { command: 'remove', kid: kid as string, force: flags.has('--force') };
}

const iso = (ms: number | null) => (ms === null ? '-' : new Date(ms).toISOString());

/** The keys as a table, or as JSON for scripts. No key material is ever shown. */
export function formatKeys(keys: KeyInfo[], json: boolean): string {
  const rows = keys.map((k) => ({
    kid: k.kid,
    alg: k.alg,
    state: k.state,
    created_at: iso(k.createdAt),
    publish_at: iso(k.publishAt),
    activate_at: iso(k.activateAt),
    retired_at: iso(k.retiredAt),
    verify_until: iso(k.verifyUntil),
  }));
  if (json) return JSON.stringify(rows, null, 2);
  if (rows.length === 0) return 'No signing keys yet: the server makes the first one when it starts.';
  const header = ['KID', 'ALG', 'STATE', 'SIGNS FROM', 'RETIRED', 'VERIFIES UNTIL'];
  const table = [header, ...rows.map((r) => [r.kid, r.alg, r.state, r.activate_at, r.retired_at, r.verify_until])];
  const widths = header.map((_, i) => Math.max(...table.map((r) => (r[i] ?? '').length)));
  return table.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ')).join('\n');
}

/** Runs one command against `keyring`; returns what to print. Refusals throw a {@link KeyringError}. */
export async function runKeysCommand(cmd: Exclude<KeysCommand, { command: 'help' }>, keyring: Keyring): Promise<{ output: string; changed: boolean }> {
  switch (cmd.command) {
    case 'list':
      return { output: formatKeys(keyring.list(), cmd.json), changed: false };
    case 'rotate': {
      const k = await keyring.rotate({ immediately: cmd.now });
      return { output: `Made key ${k.kid} (${k.alg}): published now, signs from ${iso(k.activateAt)}`, changed: true };
    }
    case 'retire': {
      const k = await keyring.retire(cmd.kid);
      return { output: `Retired key ${k.kid}; tokens it signed verify until ${iso(k.verifyUntil)}`, changed: true };
    }
    case 'remove':
      await keyring.remove(cmd.kid, { force: cmd.force });
      return { output: `Removed key ${cmd.kid}`, changed: true };
  }
}

async function main(argv: readonly string[]): Promise<number> {
  const parsed = parseKeysArgs(argv);
  if (typeof parsed === 'string') {
    process.stderr.write(`${parsed}\n\n${KEYS_USAGE}`);
    return 2;
  }
  if (parsed.command === 'help') {
    process.stdout.write(KEYS_USAGE);
    return 0;
  }
  let store: Store | undefined;
  try {
    dotenv.config({ quiet: true });
    let config = loadConfig(process.env);
    // Outside production, the same generated JWT_SECRET the server uses (the keys are sealed under it).
    const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };
    config = resolveSecret(config, quiet);
    store = await openStore(config.databaseUrl, { timeouts: config.storeTimeouts });
    const keyring = createKeyring({
      store,
      clock: systemClock,
      settings: {
        algorithm: config.jwtAlgorithm,
        rootSecret: config.jwtSecret as string,
        accessTokenTtl: config.accessTokenTtl,
        clockSkew: config.clockSkew,
        publishLeadMs: config.keyPublishLead * 1000,
        rotationPeriodMs: 0,
      },
    });
    if (parsed.command === 'list') {
      // What is stored, as it is, with no key opened: it works whatever JWT_SECRET is set.
      const keys = (await store.listSigningKeys()).map((r) => keyInfo(r, systemClock.now()));
      process.stdout.write(`${formatKeys(keys, parsed.json)}\n`);
      return 0;
    }
    // The CLI makes no first key (the server does, when it starts).
    await keyring.load();
    const { output, changed } = await runKeysCommand(parsed, keyring);
    process.stdout.write(`${output}\n`);
    if (changed && config.rateLimit.redisUrl !== undefined) await publishKeyChange(config.rateLimit.redisUrl, config.redisTimeout);
    return 0;
  } catch (error) {
    const message =
      error instanceof ConfigError || error instanceof KeyringError ? error.message : `Failed: ${error instanceof Error ? error.message : String(error)}`;
    process.stderr.write(`${message}\n`);
    return 1;
  } finally {
    await store?.close();
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      process.stderr.write(`Failed: ${error instanceof Error ? error.message : String(error)}\n`);
      process.exitCode = 1;
    },
  );
}
