import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { startOrphanReaper } from './orphan-reaper';
import { waitUntilStopped } from './proc-table';
import { freePort } from './server-process';

const OUTPUT_LIMIT = 16 * 1024;

/** A throw-away redis-server owned by one test file. */
export interface RedisProcess {
  /** `redis://127.0.0.1:<port>`; the same across stop/start. */
  readonly url: string;
  readonly port: number;
  /** The running server's pid; undefined while stopped. */
  pid(): number | undefined;
  /** SIGTERM (SIGKILL after 5 s), waiting until it exited. Thaws first. The data is gone: no persistence. */
  stop(): Promise<void>;
  /** Starts it again on the same port (empty); resolves once it answers PING. */
  start(): Promise<void>;
  /** SIGSTOP, resolving once the process is stopped. TCP connects still complete; nothing answers. */
  freeze(): Promise<void>;
  /** SIGCONT. */
  thaw(): Promise<void>;
  /** The last 16 KiB of the server's output, for failure messages. */
  output(): string;
  /** Kill and remove its temp folder. Safe to call twice. */
  destroy(): Promise<void>;
}

/** Options for {@link startRedis}. */
export interface RedisOptions {
  /** Path to redis-server; by default looked up on PATH, then /usr/bin, /usr/local/bin, /usr/sbin. */
  bin?: string;
  /** Extra `--name value` arguments, e.g. `{ maxmemory: '16mb' }`. */
  args?: Record<string, string>;
  /** Bound on each start. Default 10 s. */
  startTimeoutMs?: number;
}

/** Where redis-server is, or a thrown error naming the package to install. */
export function findRedisServer(): string {
  const dirs = [...(process.env['PATH'] ?? '').split(path.delimiter), '/usr/bin', '/usr/local/bin', '/usr/sbin'];
  for (const d of dirs) {
    const candidate = path.join(d, 'redis-server');
    if (d && fs.existsSync(candidate)) return candidate;
  }
  throw new Error('no redis-server found: apt-get install -y redis-server');
}

/** Resolves true when a PING on a fresh connection gets +PONG within `timeoutMs`. */
function ping(port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    let reply = '';
    const done = (ok: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (d) => {
      reply += d.toString();
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG'));
    });
    socket.on('error', () => done(false));
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Runs `redis-server --port <free> --bind 127.0.0.1 --save "" --appendonly no` as a child
 * process this test owns (working folder: a temp folder), and resolves once it answers PING.
 *
 * Call `destroy()` in `afterAll`; if this process dies first, a detached reaper kills the server
 * and removes its folder anyway (within a second).
 */
export async function startRedis(opts: RedisOptions = {}): Promise<RedisProcess> {
  const bin = opts.bin ?? findRedisServer();
  const startTimeoutMs = opts.startTimeoutMs ?? 10_000;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'redis-'));
  let port = 0;
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let out = '';

  function spawnServer(): void {
    const extra = Object.entries(opts.args ?? {}).flatMap(([k, v]) => [`--${k}`, v]);
    const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--daemonize', 'no', ...extra];
    const proc = spawn(bin, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    const keep = (d: Buffer) => {
      out = (out + d.toString()).slice(-OUTPUT_LIMIT);
    };
    proc.stdout?.on('data', keep);
    proc.stderr?.on('data', keep);
    proc.on('error', (err) => keep(Buffer.from(`spawn error: ${err.message}\n`)));
    exited = new Promise((resolve) => proc.once('exit', () => resolve()));
    void exited.then(() => {
      if (child === proc) child = undefined;
    });
    child = proc;
    // For the orphan reaper; and a forgotten destroy() must not keep jest from exiting.
    fs.writeFileSync(path.join(dir, 'redis.pid'), String(proc.pid ?? ''));
    proc.unref();
    for (const stream of [proc.stdout, proc.stderr]) (stream as unknown as { unref?: () => void } | null)?.unref?.();
  }

  const running = () => (child?.pid !== undefined && child.exitCode === null && child.signalCode === null ? child : undefined);

  async function start(): Promise<void> {
    if (running()) return;
    spawnServer();
    const deadline = Date.now() + startTimeoutMs;
    while (Date.now() < deadline) {
      if (!running()) {
        await sleep(50); // let its last output drain from the pipes, for the message
        throw new Error(`redis-server exited during start\n${out}`);
      }
      if (await ping(port, 500)) return;
      await sleep(50);
    }
    running()?.kill('SIGKILL');
    throw new Error(`redis-server on port ${port} did not answer PING in time\n${out}`);
  }

  async function thaw(): Promise<void> {
    running()?.kill('SIGCONT');
  }

  async function stop(): Promise<void> {
    const proc = running();
    if (!proc) return;
    proc.kill('SIGCONT');
    proc.kill('SIGTERM');
    const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }

  startOrphanReaper(
    dir,
    'pid=$(cat "$dir/redis.pid" 2>/dev/null); [ -n "$pid" ] && grep -qa redis /proc/"$pid"/cmdline 2>/dev/null && kill -CONT "$pid" && kill -KILL "$pid"',
  );

  let destroyed: Promise<void> | undefined;
  function destroy(): Promise<void> {
    destroyed ??= (async () => {
      const proc = running();
      if (proc) {
        proc.kill('SIGCONT');
        proc.kill('SIGKILL');
        // A referenced timer: the child is unref'd, so only this keeps a bare script alive meanwhile.
        const keepAlive = setTimeout(() => {}, 5000);
        await exited;
        clearTimeout(keepAlive);
      }
      fs.rmSync(dir, { recursive: true, force: true });
    })();
    return destroyed;
  }

  try {
    // freePort() can race with another process taking the port before redis binds it.
    for (let attempt = 1; ; attempt += 1) {
      port = await freePort();
      out = '';
      try {
        await start();
        break;
      } catch (err) {
        if (attempt >= 3 || !/address already in use/i.test(out)) throw err;
      }
    }
  } catch (err) {
    await destroy();
    throw err;
  }

  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    pid: () => running()?.pid,
    stop,
    start,
    async freeze() {
      const proc = running();
      if (!proc?.pid) throw new Error('freeze(): redis-server is not running');
      proc.kill('SIGSTOP');
      if ((await waitUntilStopped([proc.pid])).length > 0) throw new Error('freeze(): redis-server still running after 2 s');
    },
    thaw,
    output: () => out,
    destroy,
  };
}
