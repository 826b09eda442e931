import Database from 'better-sqlite3';
import { PflexError } from '../shared/errors.js';
import { MIGRATIONS } from './migrations.js';

export type Db = Database.Database;

export interface OpenOptions {
  /**
   * Hold the database lock for the life of the connection, so that a
   * second MDM on the same data dir fails at once instead of running with a
   * diverging view of health and maps.
   */
  exclusive?: boolean;
}

/**
 * Opens (creating if needed) mdm.db: WAL so readers never block the single
 * writer, foreign keys enforced, and migrations applied in one transaction.
 */
export function openDb(path: string, o: OpenOptions = {}): Db {
  const db = new Database(path, { timeout: o.exclusive ? 200 : 5000 });
  if (o.exclusive) db.pragma('locking_mode = EXCLUSIVE');
  try {
    db.pragma('journal_mode = WAL');
  } catch (err) {
    db.close();
    if ((err as { code?: unknown }).code === 'SQLITE_BUSY') {
      throw new PflexError('PFLEX_ERR_CONFLICT', `${path} is in use by another MDM`);
    }
    throw err;
  }
  db.pragma('foreign_keys = ON');
  db.pragma('synchronous = NORMAL');
  migrate(db);
  return db;
}

export function schemaVersion(db: Db): number {
  return db.pragma('user_version', { simple: true }) as number;
}

export function migrate(db: Db): void {
  const current = schemaVersion(db);
  if (current > MIGRATIONS.length) {
    throw new PflexError('PFLEX_ERR_CONFLICT', `mdm.db schema version ${current} is newer than this pflex (${MIGRATIONS.length})`);
  }
  const apply = db.transaction(() => {
    for (let v = current; v < MIGRATIONS.length; v++) {
      db.exec(MIGRATIONS[v]!);
      db.pragma(`user_version = ${v + 1}`);
    }
  });
  apply();
}

const generations = new WeakMap<Db, number>();

/** Runs fn in one IMMEDIATE transaction (every mutation is atomic). */
export function tx<T>(db: Db, fn: () => T): T {
  return db.transaction(fn).immediate();
}

/**
 * Base of the repositories: statements are compiled once per SQL text and
 * reused (the heartbeat path runs a few of them thousands of times a second).
 */
export abstract class Repo {
  private readonly statements = new Map<string, Database.Statement>();

  constructor(protected readonly db: Db) {}

  /**
   * A counter per database connection that the writes behind cached views
   * (the PG map: PGs, pool epochs, SDS endpoints and states) bump, so that
   * a cache keyed by it can never serve a view older than a write.
   */
  generation(): number {
    return generations.get(this.db) ?? 0;
  }
  protected changed(): void {
    generations.set(this.db, (generations.get(this.db) ?? 0) + 1);
  }

  protected stmt<P extends unknown[] | {} = unknown[], R = unknown>(sql: string): Database.Statement<P, R> {
    let s = this.statements.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      this.statements.set(sql, s);
    }
    return s as unknown as Database.Statement<P, R>;
  }
}
