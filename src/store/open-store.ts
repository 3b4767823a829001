import fs from 'node:fs';
import path from 'node:path';
import { Kysely, PostgresDialect, SqliteDialect } from 'kysely';
import type { StoreTimeouts } from '../config';
import { guardStore, isStoreUnavailable, retryWhileStoreAway, type StoreWait } from './availability';

export { StoreStartupError } from './availability';
import { createKyselyStore, migrate } from './kysely-store';
import type { Database } from './schema';
import type { Store } from './store';

/** The timeouts used when the caller names none (tests, tools): those of an unset environment. */
export const DEFAULT_STORE_TIMEOUTS: StoreTimeouts = Object.freeze({
  connect: 3_000,
  query: 5_000,
  statement: 4_000,
  sqliteBusy: 5_000,
  startup: 0,
});

export interface OpenStoreOptions {
  timeouts?: StoreTimeouts;
  /**
   * Told of every failure the driver reports outside a query, such as a pooled connection that
   * PostgreSQL closed while idle. Without a listener pg would throw it as an unhandled 'error'
   * event and end the process.
   */
  onBackgroundError?: (error: unknown) => void;
  /** Told each time start-up could not reach the store and will try again after `delayMs`. */
  onWait?: (wait: StoreWait) => void;
}

/**
 * Opens the store named by a `DATABASE_URL` (`sqlite:<file>`, `sqlite::memory:`, or
 * `postgres://...`) and brings its schema up to date. While the store cannot be reached it tries
 * again with growing pauses for up to `timeouts.startup` ms, then throws a
 * {@link StoreStartupError} naming the cause. Every verb of the store it returns turns an outage
 * into `store_unavailable` (see `guardStore`).
 */
export async function openStore(url: string, opts: OpenStoreOptions = {}): Promise<Store> {
  const timeouts = opts.timeouts ?? DEFAULT_STORE_TIMEOUTS;
  const bound = timeouts.startup > 0 ? ` within ${timeouts.startup / 1000} s (STORE_STARTUP_TIMEOUT)` : '';
  return retryWhileStoreAway(
    timeouts.startup,
    async () => {
      const db = new Kysely<Database>({ dialect: dialectFor(url, timeouts, opts.onBackgroundError) });
      try {
        // Concurrent starts are safe: kysely's migrator holds a PostgreSQL advisory lock while it
        // migrates (and creates its own tables race-free), and the first admin is made with an
        // insert-if-absent (createFirstUser).
        await migrate(db);
        return guardStore(createKyselyStore(db));
      } catch (error) {
        await db.destroy().catch(() => undefined);
        throw error;
      }
    },
    { giveUp: (reason) => `The database could not be reached${bound}: ${reason}`, ...(opts.onWait ? { onWait: opts.onWait } : {}) },
  );
}

type PgPool = import('pg').Pool;
type PgPoolClient = import('pg').PoolClient;

/**
 * The pool as kysely sees it, except that a client whose query failed for want of the server (a
 * client-side timeout, a dropped connection) is destroyed on release instead of going back to
 * the pool. After `query_timeout` the statement may still be running on the server, and the
 * ROLLBACK kysely sends behind it times out too: returned to the pool, that connection would
 * carry a half-done transaction into the next request's queries. A client that reported an
 * error while checked out is destroyed too.
 */
function discardingBrokenClients(pool: PgPool, onBackgroundError?: (error: unknown) => void) {
  const broken = new WeakSet<PgPoolClient>();
  const watched = new WeakSet<PgPoolClient>();
  return {
    async connect(): Promise<PgPoolClient> {
      const client = await pool.connect();
      if (!watched.has(client)) {
        watched.add(client);
        // pg-pool listens for errors only while a client is idle: one that is checked out between
        // two statements (inside a transaction) when PostgreSQL shuts down would otherwise throw
        // an unhandled 'error' event and end the process.
        client.on('error', (error) => {
          broken.add(client);
          onBackgroundError?.(error);
        });
        const query = client.query.bind(client) as (...args: unknown[]) => unknown;
        (client as { query: unknown }).query = (...args: unknown[]) => {
          const result = query(...args);
          if (result instanceof Promise) {
            result.catch((error: unknown) => {
              if (isStoreUnavailable(error)) broken.add(client);
            });
          }
          return result;
        };
      }
      // pg-pool gives the client a fresh release() at every checkout.
      const release = client.release.bind(client);
      client.release = (destroy?: boolean | Error) => release(destroy || (broken.has(client) ? new Error('discarded after a failed query') : undefined));
      return client;
    },
    end: () => pool.end(),
  };
}

// Each driver is loaded only when the URL names it: a server on SQLite never holds pg in memory
// (about 4.5 MB of RSS), nor one on PostgreSQL the SQLite addon (bench/NOTES.md).
function dialectFor(url: string, timeouts: StoreTimeouts, onBackgroundError?: (error: unknown) => void) {
  if (url.startsWith('sqlite:')) {
    const SqliteDatabase = require('better-sqlite3') as typeof import('better-sqlite3');
    const file = url.slice('sqlite:'.length).replace(/^\/\//, '');
    if (file !== ':memory:') fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
    const database = new SqliteDatabase(file === ':memory:' ? ':memory:' : path.resolve(file), { timeout: timeouts.sqliteBusy });
    database.pragma('journal_mode = WAL');
    // The CLI and the server may write at once: wait for the lock rather than fail, up to the
    // bound; past it the request gets a 503 (SQLITE_BUSY is an outage, see availability.ts).
    database.pragma(`busy_timeout = ${timeouts.sqliteBusy}`);
    database.pragma('foreign_keys = ON');
    return new SqliteDialect({ database });
  }
  if (/^postgres(ql)?:\/\//.test(url)) {
    const pg = require('pg') as typeof import('pg');
    const pool = new pg.Pool({
      connectionString: url,
      max: 10,
      // A server that is down refuses at once; one that is frozen accepts the TCP connection and
      // says nothing: these bound both, so no request waits for the whole outage.
      connectionTimeoutMillis: timeouts.connect,
      query_timeout: timeouts.query,
      statement_timeout: timeouts.statement,
      lock_timeout: timeouts.statement,
      idle_in_transaction_session_timeout: timeouts.query * 2,
      idleTimeoutMillis: 30_000,
      keepAlive: true,
      // bigint (oid 20) holds millisecond timestamps: read it as a number, for this pool only.
      types: {
        getTypeParser: ((oid: number, format?: 'text' | 'binary'): unknown =>
          oid === 20 ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
      },
    });
    // An idle pooled client whose server went away emits 'error' on the pool; unheard, that
    // ends the process. The pool drops that client and makes new ones on demand.
    pool.on('error', (error) => onBackgroundError?.(error));
    return new PostgresDialect({ pool: discardingBrokenClients(pool, onBackgroundError) });
  }
  throw new TypeError(`Unsupported DATABASE_URL: ${url.split(':')[0]}:...`);
}
