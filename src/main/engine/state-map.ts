import { Blake3Hasher } from '@napi-rs/blake-hash';
import { TidemarkError } from '../../shared/errors.js';
import { HASH_BYTES, zeroHash } from './block-hash.js';
import { writeU64 } from './binary.js';

/**
 * The content hash of every block of one state, in one flat buffer (32 bytes a block): the
 * state's full block map. A 64 GiB device at 64 KiB blocks costs 32 MiB.
 */
export class StateMap {
  readonly blockCount: number;
  readonly hashes: Buffer;
  /** Blocks per scan group: the unit a scan compares with one xxh3 (about 256 KiB). */
  readonly blocksPerScanGroup: number;
  /** xxh3 of every scan group as last scanned (0n = unknown); a cache for the next scan only. */
  scanHashes: BigUint64Array;

  constructor(
    readonly primarySize: number,
    readonly blockSize: number,
    hashes?: Buffer,
  ) {
    this.blockCount = Math.ceil(primarySize / blockSize);
    if (hashes && hashes.length !== this.blockCount * HASH_BYTES) {
      throw new TidemarkError('archive.corrupt', 'cached block map has the wrong size');
    }
    this.hashes = hashes ?? StateMap.zeroFilled(primarySize, blockSize, this.blockCount);
    this.blocksPerScanGroup = Math.max(1, Math.floor(SCAN_GROUP_BYTES / blockSize));
    this.scanHashes = new BigUint64Array(Math.ceil(this.blockCount / this.blocksPerScanGroup));
  }

  scanHashBytes(): Buffer {
    return Buffer.from(
      this.scanHashes.buffer,
      this.scanHashes.byteOffset,
      this.scanHashes.byteLength,
    );
  }

  private static zeroFilled(size: number, blockSize: number, count: number): Buffer {
    const hashes = Buffer.allocUnsafe(count * HASH_BYTES);
    const full = zeroHash(blockSize);
    for (let i = 0; i < count; i++) full.copy(hashes, i * HASH_BYTES);
    if (count > 0 && size % blockSize !== 0)
      zeroHash(size % blockSize).copy(hashes, (count - 1) * HASH_BYTES);
    return hashes;
  }

  /** Length in bytes of block `index` (the last block may be short). */
  blockLength(index: number): number {
    return index === this.blockCount - 1
      ? this.primarySize - index * this.blockSize
      : this.blockSize;
  }

  hashAt(index: number): Buffer {
    return this.hashes.subarray(index * HASH_BYTES, (index + 1) * HASH_BYTES);
  }

  set(index: number, hash: Uint8Array): void {
    if (index < 0 || index >= this.blockCount) {
      throw new TidemarkError(
        'archive.corrupt',
        `block map entry ${index} lies outside the primary`,
      );
    }
    this.hashes.set(hash.subarray(0, HASH_BYTES), index * HASH_BYTES);
  }

  /** Whether block `index` has content `hash` (no allocation: scans call it per block). */
  equalsAt(index: number, hash: Uint8Array): boolean {
    const at = index * HASH_BYTES;
    return this.hashes.compare(hash, 0, HASH_BYTES, at, at + HASH_BYTES) === 0;
  }

  isZeroAt(index: number): boolean {
    return this.equalsAt(index, zeroHash(this.blockLength(index)));
  }

  private zeroRun: Buffer | null = null;

  /** Whether blocks [first, first + count) are all zero in this map: one compare for a run. */
  allZero(first: number, count: number): boolean {
    if (first + count >= this.blockCount) {
      for (let i = first; i < first + count; i++) if (!this.isZeroAt(i)) return false;
      return true;
    }
    if (!this.zeroRun || this.zeroRun.length < count * HASH_BYTES) {
      this.zeroRun = Buffer.allocUnsafe(count * HASH_BYTES);
      for (let i = 0; i < count; i++) zeroHash(this.blockSize).copy(this.zeroRun, i * HASH_BYTES);
    }
    const at = first * HASH_BYTES;
    return (
      this.hashes.compare(this.zeroRun, 0, count * HASH_BYTES, at, at + count * HASH_BYTES) === 0
    );
  }

  isZeroHash(hash: Buffer, index: number): boolean {
    return hash.equals(zeroHash(this.blockLength(index)));
  }

  /**
   * The state hash: BLAKE3 over a domain tag, the primary's size and block size, and every block
   * hash in order — a two-level Merkle tree whose leaves are the blocks.
   */
  stateHash(): string {
    return computeStateHash(this.primarySize, this.blockSize, this.hashes);
  }
}

/**
 * A scan hashes groups of blocks of this size with one xxh3 call: per-call overhead, not
 * hashing, dominates at 16 KiB blocks, and only groups whose hash changed are looked at closely.
 */
const SCAN_GROUP_BYTES = 256 * 1024;

const DOMAIN = Buffer.from('tidemark-state-v1\0', 'latin1');

export function computeStateHash(primarySize: number, blockSize: number, hashes: Buffer): string {
  const head = Buffer.alloc(12);
  writeU64(head, primarySize, 0);
  head.writeUInt32LE(blockSize, 8);
  return new Blake3Hasher().update(DOMAIN).update(head).update(hashes).digest('hex');
}
