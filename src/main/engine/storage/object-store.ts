/**
 * The archive lives behind this small interface of immutable, named objects, so that a folder on a
 * disk (folder-store.ts) and an S3-compatible bucket (s3-store.ts) are interchangeable, and
 * encryption (encryption/encrypted-store.ts) wraps either. Nothing above it may rely on rename,
 * append or in-place rewrite of an object.
 *
 * Semantics every implementation guarantees:
 * - Atomicity: an object created with `create` is invisible (to `list`, `read`, `size`) until
 *   `commit` resolves; after a crash at any instant it either exists whole or not at all.
 * - Durability: when `commit` resolves, the object survives power loss.
 * - Put-if-absent: `commit` fails with `archive.corrupt` if the name already exists. The folder
 *   store guarantees this only for writers holding the archive lock (one writer at a time); the
 *   S3 store sends If-None-Match: * and checks with a HEAD under the same lock.
 * - Immutability: a committed object never changes; it can only be deleted whole.
 * - Errors are `TidemarkError`s: `archive.full`, `archive.read-only`, `archive.io`, and
 *   `archive.corrupt` for a missing object or a short read.
 */
export interface ObjectStore {
  /** Human description of where the objects live (a folder path, a bucket URL). */
  readonly location: string;
  create(name: string): Promise<ObjectWriter>;
  /** Reads exactly `length` bytes at `offset` into `into` (or a new buffer) and returns them. */
  read(name: string, offset: number, length: number, into?: Buffer): Promise<Buffer>;
  size(name: string): Promise<number>;
  exists(name: string): Promise<boolean>;
  /** Names of committed objects starting with `prefix`, sorted. */
  list(prefix: string): Promise<string[]>;
  delete(name: string): Promise<void>;
  /** Removes leftovers of writers that never committed (after a crash). Holder of the lock only. */
  removeIncomplete(): Promise<number>;
}

export interface ObjectWriter {
  readonly name: string;
  /** Bytes written so far. */
  readonly length: number;
  /** Appends bytes; the buffer may be reused by the caller once the promise resolves. */
  write(data: Uint8Array): Promise<void>;
  /**
   * Optional hint: starts making the bytes written so far durable, so that `commit` has less
   * left to flush. It neither makes the object visible nor replaces `commit`'s own durability.
   */
  writeAhead?(): Promise<void>;
  /**
   * Optional hint, for long writes: starts making the bytes written so far durable without
   * waiting for it, so that the disk works while the writer goes on and `commit` finds little
   * left to flush. A failure of it fails `commit`.
   */
  syncBehind?(): void;
  /** Makes the object durable and visible under its name. */
  commit(): Promise<void>;
  /** Discards everything written; safe to call after a failed write or commit. */
  abort(): Promise<void>;
}
