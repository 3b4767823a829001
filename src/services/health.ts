import type { Logger } from './logger';

/**
 * `up`: working. `degraded`: working without one of its parts (Redis away: revocations arrive
 * by polling only, login limits count per process). `down`: not working.
 */
export type DependencyState = 'up' | 'degraded' | 'down';

export interface DependencyStatus {
  state: DependencyState;
  /** Why it is not up, in words fit for an operator (never a secret or a URL). */
  detail?: string;
}

/**
 * What this instance knows of its own health, for `/readyz` and the log: the state of each
 * dependency watched in the background, and whether the process is shutting down.
 */
export interface Health {
  /** True once {@link drain} was called: readiness answers 503 from then on. */
  readonly draining: boolean;
  /** The process is shutting down: readiness turns 503 so load balancers stop sending. */
  drain(): void;
  /** Records a dependency's state; a change is logged once (warn when worse, info when better). */
  set(name: string, state: DependencyState, detail?: string): void;
  get(name: string): DependencyStatus | undefined;
  /** Every dependency recorded so far. */
  snapshot(): Record<string, DependencyStatus>;
}

const rank: Record<DependencyState, number> = { up: 0, degraded: 1, down: 2 };

export function createHealth(logger?: Logger): Health {
  const states = new Map<string, DependencyStatus>();
  let draining = false;
  return {
    get draining() {
      return draining;
    },
    drain() {
      draining = true;
    },
    set(name, state, detail) {
      const before = states.get(name);
      states.set(name, detail === undefined || state === 'up' ? { state } : { state, detail });
      if (before?.state === state) return;
      if (before === undefined && state === 'up') return;
      const worse = rank[state] > rank[before?.state ?? 'up'];
      const line = { event: 'dependency_state', dependency: name, state, ...(detail ? { detail } : {}) };
      if (worse) logger?.warn(line, `${name} is ${state}${detail ? `: ${detail}` : ''}`);
      else logger?.info(line, `${name} is ${state} again`);
    },
    get: (name) => states.get(name),
    snapshot: () => Object.fromEntries(states),
  };
}
