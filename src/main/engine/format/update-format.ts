/**
 * Byte layout of an update object (docs/FORMAT.md, "Update object"). Pure encoding and decoding:
 * no I/O, no policy.
 *
 *   header  16 B  'TIDEMARK' u32 version u32 kind(1)
 *   records       48 B record header + stored bytes: stored blocks, and the block map in
 *                 frames of up to 16384 entries of 40 B (written as they fill, so a writer
 *                 never holds a whole map in memory)
 *   map           frame index: u32 count, then per frame u64 offset + BLAKE3 of its stored bytes
 *   meta          UTF-8 JSON (UpdateMeta)
 *   trailer 80 B  'TMKTRAIL' u32 version u32 0 u64 mapOffset u64 mapLength u64 metaOffset
 *                 u64 metaLength, BLAKE3(map ‖ meta ‖ trailer[0..48])
 *
 * Integers are little-endian. Block indexes are stored as two u32 (low, high).
 */
import { TidemarkError } from '../../../shared/errors.js';
import type { Consistency } from '../../../shared/states.js';
import { Blake3Hasher } from '@napi-rs/blake-hash';
import { HASH_BYTES } from '../block-hash.js';
import { checkFormatVersion, FORMAT_VERSION } from './version.js';
import { readU64, writeU64 } from '../binary.js';

export const FILE_MAGIC = Buffer.from('TIDEMARK', 'latin1');
export const TRAILER_MAGIC = Buffer.from('TMKTRAIL', 'latin1');
export const KIND_UPDATE = 1;
export const HEADER_BYTES = 16;
export const RECORD_HEADER_BYTES = 48;
export const MAP_ENTRY_BYTES = 8 + HASH_BYTES;
export const MAP_FRAME_ENTRIES = 16384;
export const FRAME_INDEX_ENTRY_BYTES = 8 + HASH_BYTES;

/** What a record holds. */
export const RECORD_BLOCK = 0;
export const RECORD_MAP_FRAME = 1;
/** A frame of a volume's file entries (docs/FORMAT.md, "Volume archives"). */
export const RECORD_ENTRY_FRAME = 2;
export const TRAILER_BYTES = 80;
const TRAILER_COVERED = 48;

/** What an update says about itself; JSON in the meta section. */
export interface UpdateMeta {
  format: number;
  archiveId: string;
  /** The state this update produces. */
  stateId: number;
  /** The state it applies to (null for the baseline). */
  parentStateId: number | null;
  time: string;
  blockSize: number;
  primarySize: number;
  changedBlocks: number;
  storedBlocks: number;
  stateHash: string;
  consistency: Consistency;
  consistencyReason?: string;
  /** Volume updates only: files, folders and links added, changed or removed. */
  changedFiles?: number;
  /**
   * Retention only: this update replaces the updates of states `collapsedFrom`..`stateId` (a
   * collapse, or with `parentStateId` null an integration into the base). States in that range
   * other than `stateId` were removed on purpose.
   */
  collapsedFrom?: number;
  /** Volume updates only: files that could not be read at this point (they keep their old version). */
  unreadable?: Array<{ path: string; reason: string }>;
}

export interface Trailer {
  mapOffset: number;
  mapLength: number;
  metaOffset: number;
  metaLength: number;
  checksum: Buffer;
}

export interface RecordHeader {
  /** Block: BLAKE3 of the raw content. Map frame: BLAKE3 of the stored bytes. */
  hash: Buffer;
  rawLength: number;
  storedLength: number;
  codec: number;
  kind: number;
}

export function encodeFileHeader(): Buffer {
  const b = Buffer.alloc(HEADER_BYTES);
  FILE_MAGIC.copy(b, 0);
  b.writeUInt32LE(FORMAT_VERSION, 8);
  b.writeUInt32LE(KIND_UPDATE, 12);
  return b;
}

export function checkFileHeader(b: Buffer, where: string): void {
  if (b.length < HEADER_BYTES || !b.subarray(0, 8).equals(FILE_MAGIC)) {
    throw new TidemarkError('archive.corrupt', `${where} is not a Tidemark update (bad magic)`);
  }
  checkFormatVersion(b.readUInt32LE(8), where);
  if (b.readUInt32LE(12) !== KIND_UPDATE)
    throw new TidemarkError('archive.corrupt', `${where}: unknown object kind`);
}

export function writeRecordHeader(into: Buffer, h: RecordHeader): void {
  h.hash.copy(into, 0, 0, HASH_BYTES);
  into.writeUInt32LE(h.rawLength, 32);
  into.writeUInt32LE(h.storedLength, 36);
  into.writeUInt8(h.codec, 40);
  into.writeUInt8(h.kind, 41);
  into.fill(0, 42, RECORD_HEADER_BYTES);
}

export function readRecordHeader(b: Buffer, offset = 0): RecordHeader {
  return {
    hash: b.subarray(offset, offset + HASH_BYTES),
    rawLength: b.readUInt32LE(offset + 32),
    storedLength: b.readUInt32LE(offset + 36),
    codec: b.readUInt8(offset + 40),
    kind: b.readUInt8(offset + 41),
  };
}

export function writeMapEntry(
  into: Buffer,
  at: number,
  blockIndex: number,
  hash: Uint8Array,
): void {
  writeU64(into, blockIndex, at);
  into.set(hash.subarray(0, HASH_BYTES), at + 8);
}

export function encodeFrameIndex(frames: Array<{ offset: number; checksum: Buffer }>): Buffer {
  const b = Buffer.alloc(4 + frames.length * FRAME_INDEX_ENTRY_BYTES);
  b.writeUInt32LE(frames.length, 0);
  frames.forEach((f, i) => {
    const at = 4 + i * FRAME_INDEX_ENTRY_BYTES;
    writeU64(b, f.offset, at);
    f.checksum.copy(b, at + 8);
  });
  return b;
}

export function decodeFrameIndex(
  b: Buffer,
  where: string,
): Array<{ offset: number; checksum: Buffer }> {
  const count = b.length >= 4 ? b.readUInt32LE(0) : -1;
  if (count < 0 || b.length !== 4 + count * FRAME_INDEX_ENTRY_BYTES) {
    throw new TidemarkError('archive.corrupt', `${where}: block map index damaged`);
  }
  return Array.from({ length: count }, (_, i) => {
    const at = 4 + i * FRAME_INDEX_ENTRY_BYTES;
    return { offset: readU64(b, at), checksum: b.subarray(at + 8, at + FRAME_INDEX_ENTRY_BYTES) };
  });
}

/** Builds the trailer; its checksum covers map ‖ meta ‖ the trailer's own fields. */
export function encodeTrailer(t: Omit<Trailer, 'checksum'>, mapAndMeta: Buffer[]): Buffer {
  const b = Buffer.alloc(TRAILER_BYTES);
  TRAILER_MAGIC.copy(b, 0);
  b.writeUInt32LE(FORMAT_VERSION, 8);
  writeU64(b, t.mapOffset, 16);
  writeU64(b, t.mapLength, 24);
  writeU64(b, t.metaOffset, 32);
  writeU64(b, t.metaLength, 40);
  sectionChecksum(mapAndMeta, b.subarray(0, TRAILER_COVERED)).copy(b, TRAILER_COVERED);
  return b;
}

export function decodeTrailer(b: Buffer, fileSize: number, where: string): Trailer {
  if (b.length !== TRAILER_BYTES || !b.subarray(0, 8).equals(TRAILER_MAGIC)) {
    throw new TidemarkError('archive.corrupt', `${where} is incomplete or damaged (bad trailer)`);
  }
  checkFormatVersion(b.readUInt32LE(8), where);
  const t: Trailer = {
    mapOffset: readU64(b, 16),
    mapLength: readU64(b, 24),
    metaOffset: readU64(b, 32),
    metaLength: readU64(b, 40),
    checksum: b.subarray(TRAILER_COVERED, TRAILER_COVERED + HASH_BYTES),
  };
  const ok =
    t.mapOffset >= HEADER_BYTES &&
    t.metaOffset === t.mapOffset + t.mapLength &&
    t.metaOffset + t.metaLength + TRAILER_BYTES === fileSize;
  if (!ok)
    throw new TidemarkError('archive.corrupt', `${where}: trailer offsets do not fit the file`);
  return t;
}

/** The checksum over map ‖ meta ‖ trailer fields, computed the same way by writer and reader. */
export function sectionChecksum(mapAndMeta: Buffer[], trailerFields: Buffer): Buffer {
  const hasher = new Blake3Hasher();
  for (const part of mapAndMeta) hasher.update(part);
  hasher.update(trailerFields);
  return hasher.digestBuffer();
}

export function trailerFields(trailer: Buffer): Buffer {
  return trailer.subarray(0, TRAILER_COVERED);
}

export function parseMeta(json: Buffer, where: string): UpdateMeta {
  let meta: UpdateMeta;
  try {
    meta = JSON.parse(json.toString('utf8')) as UpdateMeta;
  } catch {
    throw new TidemarkError('archive.corrupt', `${where}: unreadable metadata`);
  }
  checkFormatVersion(meta.format, where);
  return meta;
}
