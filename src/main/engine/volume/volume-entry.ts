/**
 * One location group of a volume: a file, folder, symbolic link or special file, with the
 * metadata restore gives back and, for a file, the hashes of its content blocks. Binary layout in
 * docs/FORMAT.md ("Entry frames"). Paths are the raw bytes of the name (names need not be UTF-8),
 * carried in strings as latin1 so every byte maps to one char and back.
 */
import { Blake3Hasher } from '@napi-rs/blake-hash';
import { TidemarkError } from '../../../shared/errors.js';
import type { VolumeEntryType } from '../../../shared/states.js';
import { HASH_BYTES } from '../block-hash.js';

export interface VolumeEntry {
  /** Relative to the tree's root, '/'-separated, raw bytes as latin1. */
  path: string;
  type: VolumeEntryType;
  /** Permission bits with setuid, setgid and sticky (mode & 0o7777). */
  mode: number;
  uid: number;
  gid: number;
  mtimeNs: bigint;
  size: number;
  /** Symbolic links: the target, raw bytes as latin1. */
  target?: string;
  /** Device nodes. */
  rdev: bigint;
  /** Files: BLAKE3 over the block hashes (see fileContentHash). */
  contentHash?: Buffer;
  /** Files: n × 32-byte block hashes, in order. */
  blocks?: Buffer;
  /**
   * Big files read in this process: one xxh3 per block, in step with `blocks` (never stored: a
   * cache that lets the next read skip BLAKE3 for unchanged blocks, file-blocks.ts).
   */
  scanHashes?: BigUint64Array;
  // Tracking hints, not part of the state: a change to any of them means "look again".
  ino: bigint;
  ctimeNs: bigint;
  nlink: number;
}

const OP_UPSERT = 1;
const OP_DELETE = 2;
const TYPES: VolumeEntryType[] = [
  'file',
  'dir',
  'symlink',
  'fifo',
  'socket',
  'char-device',
  'block-device',
];
const FIXED_BYTES = 1 + 4 * 4 + 8 * 5 + 4 + 4;

export type EntryChange = { op: 'upsert'; entry: VolumeEntry } | { op: 'delete'; path: string };

export function encodedLength(change: EntryChange): number {
  if (change.op === 'delete') return 1 + 4 + change.path.length;
  const e = change.entry;
  const blocks = e.blocks?.length ?? 0;
  return (
    1 +
    4 +
    e.path.length +
    FIXED_BYTES +
    (e.target?.length ?? 0) +
    (e.type === 'file' ? HASH_BYTES + blocks : 0)
  );
}

/** Writes `change` at `at` (the caller made room: encodedLength) and returns the next offset. */
export function encodeChange(into: Buffer, at: number, change: EntryChange): number {
  const path = change.op === 'delete' ? change.path : change.entry.path;
  into[at++] = change.op === 'delete' ? OP_DELETE : OP_UPSERT;
  at = into.writeUInt32LE(path.length, at);
  at += into.write(path, at, 'latin1');
  if (change.op === 'delete') return at;
  const e = change.entry;
  into[at++] = TYPES.indexOf(e.type);
  at = into.writeUInt32LE(e.mode, at);
  at = into.writeUInt32LE(e.uid, at);
  at = into.writeUInt32LE(e.gid, at);
  at = into.writeUInt32LE(e.nlink, at);
  at = into.writeBigInt64LE(e.mtimeNs, at);
  at = into.writeBigInt64LE(e.ctimeNs, at);
  at = into.writeBigUInt64LE(BigInt(e.size), at);
  at = into.writeBigUInt64LE(e.ino, at);
  at = into.writeBigUInt64LE(e.rdev, at);
  const target = e.target ?? '';
  at = into.writeUInt32LE(target.length, at);
  at += into.write(target, at, 'latin1');
  const blockBytes = e.type === 'file' ? (e.blocks?.length ?? 0) : 0;
  at = into.writeUInt32LE(blockBytes / HASH_BYTES, at);
  if (e.type === 'file') {
    at += (e.contentHash as Buffer).copy(into, at);
    if (e.blocks) at += e.blocks.copy(into, at);
  }
  return at;
}

/** Decodes every change in a frame; `where` names the update for errors. */
export function decodeChanges(raw: Buffer, where: string, visit: (c: EntryChange) => void): void {
  let at = 0;
  const need = (n: number): void => {
    if (at + n > raw.length)
      throw new TidemarkError('archive.corrupt', `${where}: damaged file entry`);
  };
  while (at < raw.length) {
    need(5);
    const op = raw[at++];
    const pathLength = raw.readUInt32LE(at);
    at += 4;
    need(pathLength);
    const path = raw.toString('latin1', at, at + pathLength);
    at += pathLength;
    if (op === OP_DELETE) {
      visit({ op: 'delete', path });
      continue;
    }
    if (op !== OP_UPSERT) throw new TidemarkError('archive.corrupt', `${where}: bad entry op`);
    need(FIXED_BYTES);
    const type = TYPES[raw[at++] as number];
    if (!type) throw new TidemarkError('archive.corrupt', `${where}: unknown entry type`);
    const mode = raw.readUInt32LE(at);
    const uid = raw.readUInt32LE(at + 4);
    const gid = raw.readUInt32LE(at + 8);
    const nlink = raw.readUInt32LE(at + 12);
    const mtimeNs = raw.readBigInt64LE(at + 16);
    const ctimeNs = raw.readBigInt64LE(at + 24);
    const size = Number(raw.readBigUInt64LE(at + 32));
    const ino = raw.readBigUInt64LE(at + 40);
    const rdev = raw.readBigUInt64LE(at + 48);
    const targetLength = raw.readUInt32LE(at + 56);
    at += 60;
    need(targetLength + 4);
    const entry: VolumeEntry = {
      path,
      type,
      mode,
      uid,
      gid,
      mtimeNs,
      size,
      rdev,
      ino,
      ctimeNs,
      nlink,
    };
    if (type === 'symlink') entry.target = raw.toString('latin1', at, at + targetLength);
    at += targetLength;
    const blockCount = raw.readUInt32LE(at);
    at += 4;
    if (type === 'file') {
      need(HASH_BYTES * (blockCount + 1));
      entry.contentHash = Buffer.from(raw.subarray(at, at + HASH_BYTES));
      at += HASH_BYTES;
      entry.blocks = Buffer.from(raw.subarray(at, at + blockCount * HASH_BYTES));
      at += blockCount * HASH_BYTES;
    }
    visit({ op: 'upsert', entry });
  }
}

const FILE_DOMAIN = Buffer.from('tidemark-file-v1\0', 'latin1');

/**
 * A file's content hash: BLAKE3 over a domain tag, its size, the block size and its block
 * hashes. One hash pass over the data gives both the block addresses and this.
 */
export function fileContentHash(size: number, blockSize: number, blocks: Buffer): Buffer {
  const head = Buffer.alloc(12);
  head.writeUInt32LE(blockSize, 0);
  head.writeBigUInt64LE(BigInt(size), 4);
  return new Blake3Hasher().update(FILE_DOMAIN).update(head).update(blocks).digestBuffer();
}

const STATE_DOMAIN = Buffer.from('tidemark-volume-state-v1\0', 'latin1');

/** Bytes entry `e` contributes to the state hash (see volumeStateHash). */
export function leafLength(e: VolumeEntry): number {
  return 4 + e.path.length + 17 + (e.target?.length ?? 0) + (e.contentHash ? HASH_BYTES : 0);
}

/** Writes the state-hash leaf of `e` at `at` (the caller made room: leafLength). */
export function writeLeaf(buffer: Buffer, at: number, e: VolumeEntry): number {
  at = buffer.writeUInt32LE(e.path.length, at);
  at += buffer.write(e.path, at, 'latin1');
  buffer[at++] = TYPES.indexOf(e.type);
  at = buffer.writeUInt32LE(e.mode, at);
  at = buffer.writeBigUInt64LE(BigInt(e.size), at);
  at = buffer.writeUInt32LE(e.target?.length ?? 0, at);
  if (e.target) at += buffer.write(e.target, at, 'latin1');
  if (e.contentHash) at += e.contentHash.copy(buffer, at);
  return at;
}

/** The state hash of the leaves of every entry, concatenated in path order. */
export function stateHashOfLeaves(leaves: Buffer): string {
  return new Blake3Hasher().update(STATE_DOMAIN).update(leaves).digest('hex');
}

/**
 * The state hash of a volume: BLAKE3 over every entry in byte order of its path: path, type,
 * mode, size, symlink target and content hash. Times and owners are restored and checked
 * separately (a restore cannot set nanoseconds exactly, nor owners without root).
 */
export function volumeStateHash(sorted: Iterable<VolumeEntry>): string {
  const hasher = new Blake3Hasher().update(STATE_DOMAIN);
  // Leaves are gathered into one buffer and hashed in few native calls.
  let buffer = Buffer.allocUnsafe(1 << 20);
  let used = 0;
  for (const e of sorted) {
    const need = leafLength(e);
    if (used + need > buffer.length) {
      hasher.update(buffer.subarray(0, used));
      used = 0;
      if (need > buffer.length) buffer = Buffer.allocUnsafe(need);
    }
    used = writeLeaf(buffer, used, e);
  }
  hasher.update(buffer.subarray(0, used));
  return hasher.digest('hex');
}

/** Byte order of latin1-carried paths: the same as comparing the raw bytes. */
export function comparePaths(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export function typeOfStats(s: {
  isFile(): boolean;
  isDirectory(): boolean;
  isSymbolicLink(): boolean;
  isFIFO(): boolean;
  isSocket(): boolean;
  isCharacterDevice(): boolean;
}): VolumeEntryType {
  if (s.isFile()) return 'file';
  if (s.isDirectory()) return 'dir';
  if (s.isSymbolicLink()) return 'symlink';
  if (s.isFIFO()) return 'fifo';
  if (s.isSocket()) return 'socket';
  return s.isCharacterDevice() ? 'char-device' : 'block-device';
}

/** A path for people and JSON: UTF-8 where the bytes are, with invalid bytes as U+FFFD. */
export function displayPath(key: string): string {
  return Buffer.from(key, 'latin1').toString('utf8');
}
