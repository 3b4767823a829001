import { spawnSync } from 'node:child_process';

/**
 * Whether a TCP service answers on 127.0.0.1:`port`, decided synchronously at load time so a
 * test file can choose `describe` or `describe.skip` and jest reports a skip as a skip. Under
 * `CI=true` a missing service throws: CI must have it.
 */
export function serviceUp(name: string, port: number): boolean {
  const probe = spawnSync(
    process.execPath,
    [
      '-e',
      `const s=require('node:net').connect(${port},'127.0.0.1');s.on('connect',()=>process.exit(0));s.on('error',()=>process.exit(1));setTimeout(()=>process.exit(1),2000)`,
    ],
    { timeout: 5_000 },
  );
  const up = probe.status === 0;
  if (!up) {
    if (process.env['CI'] === 'true') throw new Error(`${name} is required under CI at 127.0.0.1:${port}`);
    console.warn(`${name} is not reachable at 127.0.0.1:${port}: its tests are skipped`);
  }
  return up;
}

export const postgresUp = () => serviceUp('PostgreSQL', 5432);
export const redisUp = () => serviceUp('Redis', 6379);
