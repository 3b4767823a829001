import { faultToolsPresent } from '../support/fault-tools';
import { badReplies, bearer, call, type Deployment, deploy, HANG_BOUND_MS, json, login, type Reply, sleep, within } from './support';

/**
 * Two server processes sharing a PostgreSQL cluster and a redis-server of the test's own: how fast
 * a logout on one reaches the other with Redis up, down and frozen, and what the instances say
 * about it meanwhile. The store is polled every POLL ms, so only the bus can be faster than that.
 */
jest.setTimeout(120_000);

const POLL = 2_000;
/** The target with Redis up: another instance refuses a revoked token within this. */
const BUS_BOUND_MS = 100;

(faultToolsPresent() ? describe : describe.skip)('Redis going away between instances', () => {
  let d: Deployment;
  beforeAll(async () => {
    d = await deploy({ instances: 2, redis: true, env: { REVOCATION_POLL_INTERVAL: String(POLL) } });
  });
  afterAll(async () => {
    await d?.destroy();
  });
  afterEach(() => {
    expect(d.exited()).toEqual([]);
  });

  const [A, B] = [0, 1];
  const url = (i: number) => d.servers[i]?.url as string;

  /**
   * Logs in on A, checks B accepts the token, logs out on A, and measures how long B still
   * accepts it after the 204 (polling B every 5 ms, for at most `boundMs`). -1: not within the bound.
   */
  async function propagation(boundMs: number): Promise<number> {
    const s = await login(url(A));
    expect((await call(`${url(B)}/user`, bearer(s.access))).status).toBe(200);
    const out = await call(`${url(A)}/logout`, { method: 'POST', ...bearer(s.access) });
    expect(out.status).toBe(204);
    const acknowledged = Date.now();
    for (;;) {
      const r = await call(`${url(B)}/user`, bearer(s.access));
      if (r.status === 401) return Date.now() - acknowledged;
      if (Date.now() - acknowledged > boundMs) return -1;
      await sleep(5);
    }
  }

  async function samples(n: number, boundMs: number): Promise<number[]> {
    const out: number[] = [];
    for (let i = 0; i < n; i += 1) out.push(await propagation(boundMs));
    return out;
  }

  const redisState = async (i: number) => ((await call(`${url(i)}/readyz`)).body['checks'] as Record<string, string> | undefined)?.['redis'];

  function report(name: string, figures: Record<string, unknown>): void {
    process.stdout.write(`[faults] ${name}: ${JSON.stringify(figures)}\n`);
  }

  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

  describe('revocations between instances', () => {
    test('when Redis is up, then another instance refuses a logged-out token within 100 ms', async () => {
      for (const i of [A, B]) expect(await within(5_000, async () => (await redisState(i)) === 'up')).toBeGreaterThanOrEqual(0);
      const ms = await samples(10, POLL * 2);
      expect(ms.every((m) => m >= 0 && m <= BUS_BOUND_MS)).toBe(true);
      report('revocation propagation, Redis up', { samplesMs: ms, medianMs: median(ms), maxMs: Math.max(...ms) });
    });

    test('when Redis is stopped, then logins go on, /readyz says degraded, revocations arrive within the poll interval, and on its return the bus is used again', async () => {
      await d.redis?.stop();
      const stoppedAt = Date.now();
      for (const i of [A, B]) expect(await within(3_000, async () => (await redisState(i)) === 'degraded')).toBeGreaterThanOrEqual(0);
      const ready = await call(`${url(B)}/readyz`);
      expect([ready.status, ready.body['checks']]).toEqual([200, { store: 'up', redis: 'degraded' }]);
      // Login limits fall back to each process's memory: logging in still works, and fast.
      const logins: Reply[] = [];
      for (let i = 0; i < 4; i += 1) logins.push(await call(`${url(i % 2)}/login`, json({ name: 'admin', password: 'fault-suite-admin-password' })));
      expect(logins.map((r) => r.status)).toEqual([200, 200, 200, 200]);
      expect(Math.max(...logins.map((r) => r.ms))).toBeLessThan(HANG_BOUND_MS);
      const down = await samples(4, POLL + 1_000);
      expect(down.every((m) => m >= 0 && m <= POLL + 500)).toBe(true);

      const startAt = Date.now();
      await d.redis?.start();
      const back = await Promise.all([A, B].map((i) => within(10_000, async () => (await redisState(i)) === 'up')));
      expect(back.every((ms) => ms >= 0)).toBe(true);
      const up = await samples(5, POLL * 2);
      expect(up.every((m) => m >= 0 && m <= BUS_BOUND_MS)).toBe(true);
      report('Redis stopped, then started', {
        outageMs: startAt - stoppedAt,
        propagationWhileDownMs: down,
        resubscribedAfterStartMs: back,
        propagationAfterReturnMs: up,
      });
    });

    test('when Redis is frozen, then nothing waits on it past REDIS_TIMEOUT, the instances notice, and recover after the thaw', async () => {
      await d.redis?.freeze();
      try {
        const replies: Reply[] = [];
        const started = Date.now();
        while (Date.now() - started < 3_000) {
          replies.push(await call(`${url(replies.length % 2)}/login`, json({ name: 'admin', password: 'fault-suite-admin-password' })));
          replies.push(await call(`${url(replies.length % 2)}/readyz`));
        }
        expect(badReplies(replies)).toEqual([]);
        expect(replies.filter((r) => r.status !== 200)).toEqual([]);
        expect(Math.max(...replies.map((r) => r.ms))).toBeLessThan(HANG_BOUND_MS);
        // The subscription's PING goes unanswered: each instance says it is degraded.
        for (const i of [A, B]) expect(await within(5_000, async () => (await redisState(i)) === 'degraded')).toBeGreaterThanOrEqual(0);
        const frozen = await samples(2, POLL + 1_000);
        expect(frozen.every((m) => m >= 0 && m <= POLL + 500)).toBe(true);
        report('Redis frozen', { maxLatencyMs: Math.max(...replies.map((r) => r.ms)), propagationWhileFrozenMs: frozen });
      } finally {
        await d.redis?.thaw();
      }
      const back = await Promise.all([A, B].map((i) => within(10_000, async () => (await redisState(i)) === 'up')));
      expect(back.every((ms) => ms >= 0)).toBe(true);
      const up = await samples(3, POLL * 2);
      expect(up.every((m) => m >= 0 && m <= BUS_BOUND_MS)).toBe(true);
      report('Redis thawed', { backUpMs: back, propagationMs: up });
    });
  });
});
