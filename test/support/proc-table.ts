import fs from 'node:fs';

/**
 * The one-letter state of a process from /proc/<pid>/stat (`R`, `S`, `T` stopped, `Z` zombie...),
 * or undefined when there is no such process. Linux only, no procps needed.
 */
export function procState(pid: number): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // "pid (comm) state ppid ...": comm may hold spaces or parentheses, so cut at the last ')'.
    const rest = stat.slice(stat.lastIndexOf(')') + 2);
    return rest[0];
  } catch {
    return undefined;
  }
}

/** Pids of every live process below `pid` (children, their children...), read from /proc. */
export function descendants(pid: number): number[] {
  const childrenOf = new Map<number, number[]>();
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // exited while we looked
    }
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    const list = childrenOf.get(ppid) ?? [];
    list.push(Number(entry));
    childrenOf.set(ppid, list);
  }
  const out: number[] = [];
  const queue = [pid];
  for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
    for (const child of childrenOf.get(next) ?? []) {
      out.push(child);
      queue.push(child);
    }
  }
  return out;
}

/** `process.kill(pid, sig)`, returning false instead of throwing when the process is gone. */
export function signalPid(pid: number, sig: NodeJS.Signals): boolean {
  try {
    process.kill(pid, sig);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw err;
  }
}

/**
 * Resolves once every pid is stopped (`T`), a zombie or gone, or after `timeoutMs`:
 * `kill(SIGSTOP)` only queues the signal. Resolves with the pids still not stopped.
 */
export async function waitUntilStopped(pids: number[], timeoutMs = 2000): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  const running = () => pids.filter((pid) => !['T', 't', 'Z', undefined].includes(procState(pid)));
  while (running().length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  return running();
}
