import { execFile, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { shellQuote, startOrphanReaper } from './orphan-reaper';
import { descendants, procState, signalPid, waitUntilStopped } from './proc-table';
import { freePort } from './server-process';

const PG_ROOT = '/usr/lib/postgresql';
const RUNUSER_CANDIDATES = ['/usr/sbin/runuser', '/sbin/runuser', '/usr/bin/runuser'];
const DB_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/** A throw-away PostgreSQL cluster owned by one test file. */
export interface PgCluster {
  /** `postgres://postgres@127.0.0.1:<port>/postgres`; the same across stop/start. */
  readonly url: string;
  readonly port: number;
  /** The temp folder: data directory, unix socket and server log. */
  readonly dir: string;
  readonly dataDir: string;
  /** The running postmaster's pid, from `postmaster.pid`; undefined while stopped. */
  postmasterPid(): number | undefined;
  /** Creates a database (a random `db_<hex>` name by default) and returns its URL. */
  createDatabase(name?: string): Promise<string>;
  /**
   * `pg_ctl stop -m <mode>`, waiting (bounded) until the postmaster is gone. `fast` rolls back
   * and disconnects clients; `immediate` is a crash (recovery runs on the next start). Thaws a
   * frozen cluster first. Does nothing when already stopped.
   */
  stop(mode?: 'fast' | 'immediate'): Promise<void>;
  /** Starts it again on the same port with the same data; resolves once a query answers. */
  start(): Promise<void>;
  /**
   * SIGSTOP to the postmaster and then to every process below it (backends, checkpointer,
   * autovacuum...), resolving once all of them are stopped. Returns the frozen pids. TCP
   * connects still complete (the kernel accepts into the listen backlog), but nothing answers.
   */
  freeze(): Promise<number[]>;
  /** SIGCONT to everything `freeze()` stopped (and anything else below the postmaster). */
  thaw(): Promise<void>;
  /** The tail of the server log, for failure messages. */
  log(maxBytes?: number): string;
  /** Immediate stop and removal of the temp folder. Safe to call twice. */
  destroy(): Promise<void>;
}

/** Options for {@link startPgCluster}; every field has a default sized for parallel jest files. */
export interface PgClusterOptions {
  /** Folder holding initdb and pg_ctl; by default the newest under /usr/lib/postgresql. */
  binDir?: string;
  /** Default `16MB`. */
  sharedBuffers?: string;
  /** Default 50. */
  maxConnections?: number;
  /** Extra postgresql.conf settings, e.g. `{ statement_timeout: '5s' }`. */
  settings?: Record<string, string | number | boolean>;
  /** Bound on each start (pg_ctl plus the first query). Default 30 s. */
  startTimeoutMs?: number;
}

/**
 * The `bin` folder of the newest PostgreSQL under /usr/lib/postgresql that has initdb and
 * pg_ctl (Debian's layout; they are not on PATH there). Throws, naming the fix, when none has.
 */
export function findPgBinDir(root = PG_ROOT): string {
  const versions = fs.existsSync(root) ? fs.readdirSync(root) : [];
  const usable = versions
    .filter((v) => ['initdb', 'pg_ctl'].every((b) => fs.existsSync(path.join(root, v, 'bin', b))))
    .sort((a, b) => Number.parseFloat(b) - Number.parseFloat(a));
  if (!usable[0]) throw new Error(`no initdb/pg_ctl under ${root}/<version>/bin: apt-get install -y postgresql`);
  return path.join(root, usable[0], 'bin');
}

function postgresIds(): { uid: number; gid: number } {
  const line = fs
    .readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('postgres:'));
  const [, , uid, gid] = line?.split(':') ?? [];
  if (!uid || !gid) throw new Error('running as root, but there is no postgres OS user to run the cluster as (initdb refuses root)');
  return { uid: Number(uid), gid: Number(gid) };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Makes and starts a private PostgreSQL cluster in a temp folder: `initdb` and `pg_ctl` from
 * /usr/lib/postgresql/<version>/bin, run as the `postgres` OS user when this process is root,
 * trust auth, listening only on 127.0.0.1 on a free port, its unix socket in the temp folder,
 * fsync off and small buffers. Resolves once it answers a query.
 *
 * Call `destroy()` in `afterAll`; if this process dies first, a detached reaper stops the
 * cluster and removes the folder anyway (within a second).
 */
export async function startPgCluster(opts: PgClusterOptions = {}): Promise<PgCluster> {
  const binDir = opts.binDir ?? findPgBinDir();
  const startTimeoutMs = opts.startTimeoutMs ?? 30_000;
  const asRoot = process.getuid?.() === 0;
  const ids = asRoot ? postgresIds() : undefined;
  const runuser = asRoot ? RUNUSER_CANDIDATES.find((p) => fs.existsSync(p)) : undefined;
  if (asRoot && !runuser) throw new Error(`running as root, but no runuser in ${RUNUSER_CANDIDATES.join(', ')}`);

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pg-cluster-'));
  if (ids) fs.chownSync(dir, ids.uid, ids.gid);
  const dataDir = path.join(dir, 'data');
  const logFile = path.join(dir, 'server.log');
  let port = 0;

  /** Runs a PostgreSQL tool as the cluster's owner, bounded in time. */
  function tool(name: string, args: string[], timeoutMs = startTimeoutMs): Promise<{ code: number; out: string }> {
    const exe = path.join(binDir, name);
    const [file, argv] = runuser ? [runuser, ['-u', 'postgres', '--', exe, ...args]] : [exe, args];
    return new Promise((resolve) => {
      // cwd: the tools chdir-check their working folder, and root's may be unreadable to postgres.
      execFile(file, argv, { cwd: dir, timeout: timeoutMs, env: { ...process.env, LC_ALL: 'C' } }, (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
        resolve({ code, out: `${stdout}${stderr}` });
      });
    });
  }

  function toolSync(name: string, args: string[]): void {
    const exe = path.join(binDir, name);
    const [file, argv] = runuser ? [runuser, ['-u', 'postgres', '--', exe, ...args]] : [exe, args];
    spawnSync(file, argv, { cwd: dir, timeout: 15_000, stdio: 'ignore' });
  }

  function readLog(maxBytes = 4096): string {
    try {
      const text = fs.readFileSync(logFile, 'utf8');
      return text.slice(-maxBytes);
    } catch {
      return '';
    }
  }

  function postmasterPid(): number | undefined {
    try {
      const pid = Number(fs.readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
      // A zombie (exited, not yet reaped by init) is not running.
      const state = pid > 0 ? procState(pid) : undefined;
      return state !== undefined && state !== 'Z' ? pid : undefined;
    } catch {
      return undefined;
    }
  }

  const urlFor = (db: string) => `postgres://postgres@127.0.0.1:${port}/${db}`;

  function writeSettings(): void {
    const settings: Record<string, string | number | boolean> = {
      listen_addresses: '127.0.0.1',
      port,
      unix_socket_directories: dir,
      fsync: false,
      synchronous_commit: false,
      full_page_writes: false,
      shared_buffers: opts.sharedBuffers ?? '16MB',
      max_connections: opts.maxConnections ?? 50,
      huge_pages: 'off',
      ...opts.settings,
    };
    const lines = Object.entries(settings).map(([k, v]) => `${k} = ${typeof v === 'string' ? `'${v.replace(/'/g, "''")}'` : v}`);
    // Written as the owner would; appended last in postgresql.conf, so these win.
    const file = path.join(dataDir, 'harness.conf');
    fs.writeFileSync(file, `${lines.join('\n')}\n`);
    if (ids) fs.chownSync(file, ids.uid, ids.gid);
  }

  async function waitForQuery(deadline: number): Promise<void> {
    let last: unknown;
    while (Date.now() < deadline) {
      const client = new pg.Client({ connectionString: urlFor('postgres'), connectionTimeoutMillis: 1000 });
      client.on('error', () => {}); // a connection dropped during recovery must not crash jest
      try {
        await client.connect();
        await client.query('select 1');
        await client.end();
        return;
      } catch (err) {
        last = err;
        await client.end().catch(() => {});
      }
      await sleep(100);
    }
    throw new Error(`PostgreSQL on port ${port} did not answer in time (${String(last)})\n${readLog()}`);
  }

  let frozen: number[] = [];
  async function thaw(): Promise<void> {
    const pm = postmasterPid();
    const pids = new Set([...frozen, ...(pm ? descendants(pm) : [])]);
    for (const pid of pids) if (pid !== pm) signalPid(pid, 'SIGCONT');
    if (pm) signalPid(pm, 'SIGCONT');
    frozen = [];
  }

  async function start(): Promise<void> {
    if (postmasterPid()) return;
    const deadline = Date.now() + startTimeoutMs;
    const r = await tool('pg_ctl', ['start', '-D', dataDir, '-l', logFile, '-w', '-t', String(Math.ceil(startTimeoutMs / 1000)), '-s']);
    if (r.code !== 0) throw new Error(`pg_ctl start failed (${r.code}): ${r.out}\n${readLog()}`);
    await waitForQuery(deadline);
  }

  async function stop(mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
    await thaw();
    if (!postmasterPid()) return;
    const r = await tool('pg_ctl', ['stop', '-D', dataDir, '-m', mode, '-w', '-t', '30', '-s'], 35_000);
    if (r.code !== 0 && postmasterPid()) throw new Error(`pg_ctl stop -m ${mode} failed (${r.code}): ${r.out}\n${readLog()}`);
  }

  function forceStopSync(): void {
    const pm = postmasterPid();
    if (!pm) return;
    for (const pid of [pm, ...descendants(pm)]) signalPid(pid, 'SIGCONT');
    toolSync('pg_ctl', ['stop', '-D', dataDir, '-m', 'immediate', '-w', '-t', '10', '-s']);
    const left = postmasterPid();
    if (left) for (const pid of [left, ...descendants(left)]) signalPid(pid, 'SIGKILL');
  }

  const pgCtl = [...(runuser ? [runuser, '-u', 'postgres', '--'] : []), path.join(binDir, 'pg_ctl')].map(shellQuote).join(' ');
  startOrphanReaper(
    dir,
    [
      'pm=$(head -n 1 "$dir/data/postmaster.pid" 2>/dev/null)',
      // Only if that pid still is a postgres: after a crash the pid file may be stale, the pid reused.
      'if [ -n "$pm" ] && grep -qa postgres /proc/"$pm"/cmdline 2>/dev/null; then',
      // Thaw it and its children first: a stopped process cannot act on a shutdown request.
      '  kill -CONT "$pm" $(cat /proc/"$pm"/task/*/children 2>/dev/null) 2>/dev/null',
      `  ${pgCtl} stop -D "$dir/data" -m immediate -w -t 10 -s >/dev/null 2>&1 || kill -KILL "$pm" 2>/dev/null`,
      'fi',
    ].join('\n'),
  );

  let destroyed: Promise<void> | undefined;
  function destroy(): Promise<void> {
    destroyed ??= (async () => {
      try {
        await stop('immediate');
      } catch {
        forceStopSync();
      }
      fs.rmSync(dir, { recursive: true, force: true });
    })();
    return destroyed;
  }

  try {
    const init = await tool('initdb', ['-D', dataDir, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--no-locale', '--no-sync', '--no-instructions']);
    if (init.code !== 0) throw new Error(`initdb failed (${init.code}): ${init.out}`);
    fs.appendFileSync(path.join(dataDir, 'postgresql.conf'), "\ninclude = 'harness.conf'\n");
    // freePort() can race with another process taking the port before the postmaster binds it.
    for (let attempt = 1; ; attempt += 1) {
      port = await freePort();
      writeSettings();
      try {
        await start();
        break;
      } catch (err) {
        if (attempt >= 3 || !/could not (bind|create listen)/i.test(readLog())) throw err;
        fs.rmSync(logFile, { force: true });
      }
    }
  } catch (err) {
    await destroy();
    throw err;
  }

  return {
    url: urlFor('postgres'),
    port,
    dir,
    dataDir,
    postmasterPid,
    async createDatabase(name = `db_${randomBytes(6).toString('hex')}`) {
      if (!DB_NAME.test(name)) throw new TypeError(`database name must match ${DB_NAME}: ${name}`);
      const client = new pg.Client({ connectionString: urlFor('postgres'), connectionTimeoutMillis: 5000 });
      client.on('error', () => {});
      await client.connect();
      try {
        await client.query(`create database ${name}`);
      } finally {
        await client.end();
      }
      return urlFor(name);
    },
    stop,
    start,
    async freeze() {
      const pm = postmasterPid();
      if (!pm) throw new Error('freeze(): the cluster is not running');
      // The postmaster first, so it cannot fork a new backend after we listed its children.
      signalPid(pm, 'SIGSTOP');
      frozen = [pm, ...descendants(pm).filter((pid) => signalPid(pid, 'SIGSTOP'))];
      const late = await waitUntilStopped(frozen);
      if (late.length > 0) throw new Error(`freeze(): still running after 2 s: ${late.join(', ')}`);
      return [...frozen];
    },
    thaw,
    log: readLog,
    destroy,
  };
}
