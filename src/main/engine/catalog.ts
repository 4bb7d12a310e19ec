import * as fsp from 'node:fs/promises';
import Database from 'better-sqlite3';
import type { Database as Db, Statement } from 'better-sqlite3';
import { TidemarkError } from '../../shared/errors.js';
import type { Consistency, StateInfo } from '../../shared/states.js';
import { HASH_BYTES } from './block-hash.js';
import { FORMAT_VERSION } from './format/version.js';

export const CATALOG_NAME = 'catalog.sqlite';
const SCHEMA_VERSION = FORMAT_VERSION;
const LOOKUP_BATCH = 256;
const PREFETCH_LIMIT = 1 << 30;
const CACHE_KIB = 32 << 10;

/** Where one stored block lives: update object, record offset, lengths, codec. */
export interface BlobLocation {
  update: string;
  offset: number;
  storedLength: number;
  rawLength: number;
  codec: number;
}

export interface StateRow extends StateInfo {
  update: string;
  parent: number | null;
  timeMs: number;
}

/** A stored block as its writer knows it, before the catalog names its update. */
export type NewBlob = { hash: Buffer } & Omit<BlobLocation, 'update'>;

/**
 * The catalog rows of a state whose update is still being written, in a transaction that only
 * `commit` ends: a crash, a kill or `rollback` before it leaves none of them (SQLite rolls an
 * uncommitted transaction back, from its journal if it had to write pages early).
 */
export interface PendingState {
  /** Adds rows of blocks the update stores, uncommitted. */
  addBlobs(update: string, blobs: NewBlob[]): void;
  /** Records the state, with any rows not added yet, and commits: call once the update is durable. */
  commit(state: StateRow, blobs: NewBlob[]): void;
  /** Drops every row added (the update is abandoned). Does nothing once settled. */
  rollback(): void;
}

/**
 * The SQLite index of the archive: states, where every stored block lives, and the latest
 * state's block map. It is only an index — `rebuild` recreates it from the update objects — so
 * it may be lost or damaged without losing anything.
 */
export class Catalog {
  private readonly db: Db;
  private readonly lookupStatements = new Map<number, Statement>();

  private constructor(
    db: Db,
    readonly inMemory: boolean,
  ) {
    this.db = db;
  }

  static open(file: string, readonly = false): Catalog {
    let db: Db;
    let version: number;
    try {
      // Rollback journal, not WAL: a WAL database cannot be opened on a read-only backup disk.
      db = new Database(file, readonly ? { readonly: true, fileMustExist: true } : {});
      if (!readonly) {
        db.pragma('synchronous = FULL');
        // Room for the pages a pending state dirties (beginState), so that SQLite does not write
        // them to the database file before the commit: that would lock readers out until then.
        db.pragma(`cache_size = -${CACHE_KIB}`);
      }
      db.pragma('busy_timeout = 5000');
      version = db.pragma('user_version', { simple: true }) as number;
    } catch (err) {
      throw catalogError(err, file);
    }
    if (version > SCHEMA_VERSION) {
      db.close();
      throw new TidemarkError(
        'archive.newer-format',
        `the catalog ${file} has format ${version}, newer than this Tidemark reads (${SCHEMA_VERSION}): update Tidemark`,
      );
    }
    const catalog = new Catalog(db, file === ':memory:');
    if (version === 0) {
      if (readonly) throw new TidemarkError('archive.corrupt', `the catalog ${file} is empty`);
      catalog.createSchema();
    }
    return catalog;
  }

  private createSchema(): void {
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS states (
        id INTEGER PRIMARY KEY,
        parent INTEGER,
        time TEXT NOT NULL,
        time_ms INTEGER NOT NULL,
        update_name TEXT NOT NULL,
        changed_blocks INTEGER NOT NULL,
        stored_bytes INTEGER NOT NULL,
        state_hash TEXT NOT NULL,
        consistency TEXT NOT NULL,
        consistency_reason TEXT
      );
      CREATE INDEX IF NOT EXISTS states_time ON states(time_ms);
      CREATE TABLE IF NOT EXISTS blobs (
        hash BLOB PRIMARY KEY,
        update_name TEXT NOT NULL,
        offset INTEGER NOT NULL,
        stored_length INTEGER NOT NULL,
        raw_length INTEGER NOT NULL,
        codec INTEGER NOT NULL
      ) WITHOUT ROWID;
    `);
    this.db.pragma(`user_version = ${SCHEMA_VERSION}`);
  }

  getMeta(key: string): string | undefined {
    const row = this.db.prepare('SELECT value FROM meta WHERE key = ?').get(key) as
      { value: string } | undefined;
    return row?.value;
  }

  setMeta(key: string, value: string): void {
    this.db.prepare('INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)').run(key, value);
  }

  states(): StateRow[] {
    return (this.db.prepare('SELECT * FROM states ORDER BY id').all() as DbState[]).map(toStateRow);
  }

  state(id: number): StateRow | undefined {
    const row = this.db.prepare('SELECT * FROM states WHERE id = ?').get(id) as DbState | undefined;
    return row && toStateRow(row);
  }

  latestState(): StateRow | undefined {
    const row = this.db.prepare('SELECT * FROM states ORDER BY id DESC LIMIT 1').get() as
      DbState | undefined;
    return row && toStateRow(row);
  }

  /** The latest state recorded at or before `timeMs`. */
  stateAt(timeMs: number): StateRow | undefined {
    const row = this.db
      .prepare('SELECT * FROM states WHERE time_ms <= ? ORDER BY time_ms DESC, id DESC LIMIT 1')
      .get(timeMs) as DbState | undefined;
    return row && toStateRow(row);
  }

  /**
   * Reads the database file once, sequentially and off the main thread, so that the lookups of
   * a scan find its pages in the page cache. Blob hashes are random, so each lookup touches a
   * random page: on a cold cache a few thousand of them cost more than the whole file read in
   * order (measured: 0.8 s of a 2 GiB interval). Files larger than PREFETCH_LIMIT are left to
   * SQLite's own reads. Errors are ignored: this only warms a cache.
   */
  async prefetch(): Promise<void> {
    if (this.inMemory) return;
    const handle = await fsp.open(this.db.name, 'r').catch(() => null);
    if (!handle) return;
    try {
      const { size } = await handle.stat();
      if (size > PREFETCH_LIMIT) return;
      const buffer = Buffer.allocUnsafe(Math.min(size, 1 << 20));
      for (let at = 0; at < size; at += buffer.length) {
        const { bytesRead } = await handle.read(buffer, 0, buffer.length, at);
        if (bytesRead === 0) break;
      }
    } catch {
      // Only a cache warm-up.
    } finally {
      await handle.close().catch(() => undefined);
    }
  }

  /** Locations of the given hashes that are stored; one query per 256 hashes. */
  findBlobs(hashes: Buffer[]): Map<string, BlobLocation> {
    const found = new Map<string, BlobLocation>();
    for (let i = 0; i < hashes.length; i += LOOKUP_BATCH) {
      const batch = hashes.slice(i, i + LOOKUP_BATCH);
      // Padded to a power of two (a hash repeated matches once): a few prepared statements
      // serve every batch size, instead of one prepared per size seen.
      let n = 8;
      while (n < batch.length) n *= 2;
      while (batch.length < n) batch.push(batch[batch.length - 1] as Buffer);
      for (const row of this.lookup(batch.length).all(...batch) as DbBlob[]) {
        found.set(row.hash.toString('hex'), {
          update: row.update_name,
          offset: row.offset,
          storedLength: row.stored_length,
          rawLength: row.raw_length,
          codec: row.codec,
        });
      }
    }
    return found;
  }

  private lookup(n: number): Statement {
    let statement = this.lookupStatements.get(n);
    if (!statement) {
      const marks = new Array<string>(n).fill('?').join(',');
      statement = this.db.prepare(`SELECT * FROM blobs WHERE hash IN (${marks})`);
      this.lookupStatements.set(n, statement);
    }
    return statement;
  }

  /**
   * Starts recording a state while its update is written: the update's rows go in as its blocks
   * are stored, which spares the time of inserting them all after the update is durable; the
   * commit then only adds the state row. Only for the holder of the archive lock, and nothing
   * else may write this catalog until the pending state settles.
   */
  beginState(): PendingState {
    const nested = this.db.inTransaction;
    try {
      this.db.exec(nested ? 'SAVEPOINT pending_state' : 'BEGIN IMMEDIATE');
    } catch (err) {
      throw catalogError(err, 'the catalog');
    }
    let open = true;
    const end = (sql: string): void => {
      open = false;
      this.db.exec(sql);
    };
    const rollback = (): void => {
      if (!open) return;
      // After a failed COMMIT, SQLite may already have rolled the transaction back.
      if (!this.db.inTransaction) open = false;
      else end(nested ? 'ROLLBACK TO pending_state; RELEASE pending_state' : 'ROLLBACK');
    };
    return {
      addBlobs: (update, blobs) => {
        try {
          this.insertBlobs(update, blobs);
        } catch (err) {
          throw catalogError(err, 'the catalog');
        }
      },
      commit: (state, blobs) => {
        try {
          this.recordState(state, blobs);
          end(nested ? 'RELEASE pending_state' : 'COMMIT');
        } catch (err) {
          open = true;
          try {
            rollback();
          } catch {
            // The commit's error is the one to report; closing the catalog rolls back as well.
          }
          throw err instanceof TidemarkError ? err : catalogError(err, 'the catalog');
        }
      },
      rollback,
    };
  }

  private insertBlobStatement: Statement | null = null;

  private insertBlobs(update: string, blobs: NewBlob[]): void {
    const insertBlob = (this.insertBlobStatement ??= this.db.prepare(
      'INSERT OR IGNORE INTO blobs (hash, update_name, offset, stored_length, raw_length, codec) VALUES (?, ?, ?, ?, ?, ?)',
    ));
    for (const b of blobs) {
      if (b.hash.length !== HASH_BYTES) throw new TidemarkError('internal', 'bad blob hash length');
      insertBlob.run(b.hash, update, b.offset, b.storedLength, b.rawLength, b.codec);
    }
  }

  /** Records a committed update: its state, its stored blocks and the new latest block map. */
  recordState(state: StateRow, blobs: NewBlob[]): void {
    const insertState = this.db.prepare(
      `INSERT INTO states (id, parent, time, time_ms, update_name, changed_blocks, stored_bytes, state_hash,
         consistency, consistency_reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    const run = this.db.transaction(() => {
      this.insertBlobs(state.update, blobs);
      insertState.run(
        state.id,
        state.parent,
        state.time,
        state.timeMs,
        state.update,
        state.changedBlocks,
        state.storedBytes,
        state.stateHash,
        state.consistency,
        state.consistencyReason ?? null,
      );
    });
    try {
      run();
    } catch (err) {
      throw catalogError(err, 'the catalog');
    }
  }

  /**
   * Forgets the states `stateIds` and every block stored in `updates` (a collapse replaced them;
   * call inside `atomically`, then `recordState` the update that replaces them).
   */
  forgetUpdates(stateIds: number[], updates: string[]): void {
    const dropState = this.db.prepare('DELETE FROM states WHERE id = ?');
    const dropBlobs = this.db.prepare('DELETE FROM blobs WHERE update_name = ?');
    try {
      for (const id of stateIds) dropState.run(id);
      for (const name of updates) dropBlobs.run(name);
    } catch (err) {
      throw catalogError(err, 'the catalog');
    }
  }

  /**
   * The update object each state is recorded in and its size as recorded (the object's, which
   * never changes): only these columns, as every open reads them.
   */
  stateUpdates(): Array<{ id: number; update: string; storedBytes: number }> {
    return this.db
      .prepare('SELECT id, update_name AS "update", stored_bytes AS storedBytes FROM states')
      .all() as Array<{ id: number; update: string; storedBytes: number }>;
  }

  blobHashesOf(update: string): Buffer[] {
    return (
      this.db.prepare('SELECT hash FROM blobs WHERE update_name = ?').all(update) as Array<{
        hash: Buffer;
      }>
    ).map((r) => r.hash);
  }

  /** Empties every table (before a rebuild from the update objects). */
  clear(): void {
    this.db.exec('DELETE FROM states; DELETE FROM blobs; DELETE FROM meta;');
  }

  /**
   * Runs `fn`, which may await I/O, as one SQLite transaction: all of its writes land or none
   * (better-sqlite3's `transaction` is synchronous only; `recordState` inside nests as a
   * savepoint). Only for the holder of the archive lock: nothing else may use this catalog
   * until it settles.
   */
  async atomically<T>(fn: () => Promise<T>): Promise<T> {
    try {
      this.db.exec('BEGIN IMMEDIATE');
    } catch (err) {
      throw catalogError(err, 'the catalog');
    }
    try {
      const result = await fn();
      this.db.exec('COMMIT');
      return result;
    } catch (err) {
      if (this.db.inTransaction) this.db.exec('ROLLBACK');
      throw err instanceof TidemarkError ? err : catalogError(err, 'the catalog');
    }
  }

  close(): void {
    this.db.close();
  }
}

interface DbState {
  id: number;
  parent: number | null;
  time: string;
  time_ms: number;
  update_name: string;
  changed_blocks: number;
  stored_bytes: number;
  state_hash: string;
  consistency: Consistency;
  consistency_reason: string | null;
}

interface DbBlob {
  hash: Buffer;
  update_name: string;
  offset: number;
  stored_length: number;
  raw_length: number;
  codec: number;
}

function toStateRow(r: DbState): StateRow {
  const row: StateRow = {
    id: r.id,
    time: r.time,
    changedBlocks: r.changed_blocks,
    storedBytes: r.stored_bytes,
    stateHash: r.state_hash,
    consistency: r.consistency,
    update: r.update_name,
    parent: r.parent,
    timeMs: r.time_ms,
  };
  if (r.consistency_reason) row.consistencyReason = r.consistency_reason;
  return row;
}

function catalogError(err: unknown, where: string): TidemarkError {
  const code = (err as { code?: string }).code ?? '';
  if (code === 'SQLITE_FULL')
    return new TidemarkError('archive.full', `the backup disk is full (${where})`, { cause: err });
  if (code === 'SQLITE_READONLY' || code === 'SQLITE_CANTOPEN') {
    return new TidemarkError(
      'archive.read-only',
      `cannot write ${where} (read-only or no permission)`,
      { cause: err },
    );
  }
  if (code === 'SQLITE_CORRUPT' || code === 'SQLITE_NOTADB') {
    return new TidemarkError(
      'archive.corrupt',
      `${where} is damaged: run \`tidemark catalog rebuild\``,
      { cause: err },
    );
  }
  return new TidemarkError('archive.io', `${where}: ${(err as Error).message}`, { cause: err });
}
