/**
 * How a login attempt ended, as counted: `succeeded`; `failed` (wrong name or password, or a
 * disabled account); `limited` (refused by a brute-force count or the client's share of the hash
 * queue, before any password check); `error` (no verdict: the store was away, the server busy).
 */
export type LoginOutcome = 'succeeded' | 'failed' | 'limited' | 'error';

/**
 * The events the services report for the metrics. The services call these and know nothing of
 * Prometheus (see `metrics.ts`); without metrics they go to {@link noMetricHooks}.
 */
export interface MetricHooks {
  login(outcome: LoginOutcome): void;
  /** A refresh token was replayed after the reuse interval: its session was ended. */
  refreshReused(): void;
  /** A session was revoked by this process (logout, password change, reuse, disabling...). */
  revoked(): void;
}

/** Counts nothing: the services' default, so a server without metrics pays nothing for them. */
export const noMetricHooks: MetricHooks = Object.freeze({
  login: () => undefined,
  refreshReused: () => undefined,
  revoked: () => undefined,
});
