import { spawn } from 'node:child_process';

/** `s` quoted for /bin/sh. */
export function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * Starts a small detached /bin/sh that outlives this process and, if this process dies while
 * `dir` still exists (a crashed or killed jest worker, a test file that forgot `destroy()`),
 * runs `cleanup` (shell, with `$dir` set) and removes `dir`. Removing `dir` is the normal end:
 * the reaper sees it within a second and exits. Bounded: it gives up watching after an hour
 * and cleans up then.
 *
 * A `process.on('exit')` hook is not enough: jest runs tests with its own copy of `process`
 * whose events never fire, and a SIGKILLed worker runs no hook at all.
 */
export function startOrphanReaper(dir: string, cleanup: string): void {
  const script = [
    'parent="$1"; dir="$2"; i=0',
    'while [ "$i" -lt 3600 ] && [ -d "$dir" ] && kill -0 "$parent" 2>/dev/null; do sleep 1; i=$((i+1)); done',
    '[ -d "$dir" ] || exit 0',
    cleanup,
    'rm -rf "$dir"',
  ].join('\n');
  const reaper = spawn('/bin/sh', ['-c', script, 'orphan-reaper', String(process.pid), dir], { detached: true, stdio: 'ignore' });
  reaper.on('error', () => {}); // no /bin/sh: nothing to reap with, the normal destroy() still works
  reaper.unref();
}
