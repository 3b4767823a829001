import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export const SERVER_JS = path.join(__dirname, '..', '..', 'dist', 'server.js');

/** A port that was free a moment ago, on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

export function tempDir(prefix = 'auth-srv-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export interface RunningServer {
  child: ChildProcess;
  port: number;
  url: string;
  stdout: () => string;
  stderr: () => string;
  /** Resolves with the exit code once the process has ended. */
  exited: Promise<number | null>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * Runs the built server (dist/server.js) as a child process with exactly `env` (plus PATH), in
 * `cwd`, and waits until GET /healthz answers or the process exits.
 */
export async function startServer(env: Record<string, string>, opts: { cwd?: string; waitForHealth?: boolean } = {}): Promise<RunningServer> {
  const port = env['PORT'] ? Number(env['PORT']) : await freePort();
  let out = '';
  let err = '';
  const child = spawn(process.execPath, [SERVER_JS], {
    cwd: opts.cwd ?? tempDir(),
    env: { PATH: process.env['PATH'] ?? '', HOST: '127.0.0.1', PORT: String(port), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout?.on('data', (d) => (out += d));
  child.stderr?.on('data', (d) => (err += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let done = false;
  void exited.then(() => (done = true));
  const url = `http://127.0.0.1:${port}`;
  if (opts.waitForHealth !== false) {
    const deadline = Date.now() + 20_000;
    for (;;) {
      if (done) throw new Error(`server exited before it answered /healthz\nstdout: ${out}\nstderr: ${err}`);
      try {
        const res = await fetch(`${url}/healthz`);
        if (res.ok) break;
      } catch {
        /* not up yet */
      }
      if (Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new Error(`server did not start in time\nstdout: ${out}\nstderr: ${err}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return {
    child,
    port,
    url,
    stdout: () => out,
    stderr: () => err,
    exited,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (!done) child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}
