import fs from 'node:fs';
import path from 'node:path';
import { Kysely, PostgresDialect, SqliteDialect } from 'kysely';
import { createKyselyStore, migrate } from './kysely-store';
import type { Database } from './schema';
import type { Store } from './store';

/**
 * Opens the store named by a `DATABASE_URL` (`sqlite:<file>`, `sqlite::memory:`, or
 * `postgres://...`) and brings its schema up to date.
 */
export async function openStore(url: string): Promise<Store> {
  const db = new Kysely<Database>({ dialect: dialectFor(url) });
  try {
    await migrate(db);
  } catch (error) {
    await db.destroy();
    throw error;
  }
  return createKyselyStore(db);
}

// Each driver is loaded only when the URL names it: a server on SQLite never holds pg in memory
// (about 4.5 MB of RSS), nor one on PostgreSQL the SQLite addon (bench/NOTES.md).
function dialectFor(url: string) {
  if (url.startsWith('sqlite:')) {
    const SqliteDatabase = require('better-sqlite3') as typeof import('better-sqlite3');
    const file = url.slice('sqlite:'.length).replace(/^\/\//, '');
    if (file !== ':memory:') fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
    const database = new SqliteDatabase(file === ':memory:' ? ':memory:' : path.resolve(file));
    database.pragma('journal_mode = WAL');
    // The CLI and the server may write at once: wait for the lock rather than fail.
    database.pragma('busy_timeout = 5000');
    return new SqliteDialect({ database });
  }
  if (/^postgres(ql)?:\/\//.test(url)) {
    const pg = require('pg') as typeof import('pg');
    const pool = new pg.Pool({
      connectionString: url,
      max: 10,
      // bigint (oid 20) holds millisecond timestamps: read it as a number, for this pool only.
      types: {
        getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
          oid === 20 ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
      },
    });
    return new PostgresDialect({ pool });
  }
  throw new TypeError(`Unsupported DATABASE_URL: ${url.split(':')[0]}:...`);
}
