import { AuthError } from '../errors';

export interface HashQueueLimits {
  /** Hashes running at once. */
  concurrency: number;
  /** Hashes running or waiting, from all clients together; past it, 503 at once. */
  maxQueued: number;
  /** Hashes running or waiting for one client; past it, 429 at once. */
  perClient: number;
}

/**
 * Runs password hashes a few at a time, fairly between clients: each client (its address) has
 * a queue of its own and the queues take turns, so one client sending a burst waits behind its
 * own requests, not in front of everyone else's. Both the share of one client and the whole
 * queue are bounded; past them a request is refused at once with `Retry-After` instead of
 * waiting for seconds.
 */
export interface HashQueue {
  /** Runs `work` in its turn. `client` undefined (the CLI, start-up) is a client of its own. */
  run<T>(client: string | undefined, work: () => Promise<T>): Promise<T>;
  /** Hashes waiting for a turn, and running. */
  readonly waiting: number;
  readonly running: number;
}

interface Job {
  start: () => void;
}

const busy = (code: 'rate_limited' | 'server_busy', message: string) => new AuthError(code, message, { headers: { 'Retry-After': '1' } });

export function createHashQueue(limits: HashQueueLimits): HashQueue {
  // Clients with work waiting, in turn order; each with its own first-in first-out queue.
  const queues = new Map<string, Job[]>();
  const perClient = new Map<string, number>();
  let running = 0;
  let waiting = 0;

  const next = () => {
    while (running < limits.concurrency && waiting > 0) {
      // The client whose turn it is: the first in the map; after it is served it goes to the
      // back (a Map keeps insertion order), so clients take turns.
      const [client, jobs] = queues.entries().next().value as [string, Job[]];
      const job = jobs.shift() as Job;
      queues.delete(client);
      if (jobs.length > 0) queues.set(client, jobs);
      waiting -= 1;
      running += 1;
      job.start();
    }
  };

  return {
    run(client, work) {
      const key = client ?? '';
      const mine = perClient.get(key) ?? 0;
      if (client !== undefined && mine >= limits.perClient) {
        return Promise.reject(busy('rate_limited', 'Too many password checks from this client at once. Try again in 1 second.'));
      }
      if (running + waiting >= limits.maxQueued) {
        return Promise.reject(busy('server_busy', 'The server is busy checking passwords. Try again in 1 second.'));
      }
      perClient.set(key, mine + 1);
      return new Promise((resolve, reject) => {
        const job: Job = {
          start: () => {
            work()
              .then(resolve, reject)
              .finally(() => {
                running -= 1;
                const left = (perClient.get(key) ?? 1) - 1;
                if (left > 0) perClient.set(key, left);
                else perClient.delete(key);
                next();
              });
          },
        };
        const jobs = queues.get(key);
        if (jobs) jobs.push(job);
        else queues.set(key, [job]);
        waiting += 1;
        next();
      });
    },
    get waiting() {
      return waiting;
    },
    get running() {
      return running;
    },
  };
}
