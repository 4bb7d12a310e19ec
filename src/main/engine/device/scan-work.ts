// The per-byte work of a device scan, done on the block worker while the engine's thread reads
// the next chunks and stores the changed blocks of the previous ones.
import { alignedSharedMemory } from '../aligned-buffer.js';
import { HASH_BYTES, hashBlock, isZero, zeroHash } from '../block-hash.js';
import { ScanHasher, UNKNOWN_SCAN_HASH } from '../scan-hash.js';

/** The group's xxh3 equals the one it had: none of its blocks changed. */
export const GROUP_SAME = 0;
/** Every byte of the group is zero (its scan hash is left unknown, as zero blocks' are). */
export const GROUP_ZERO = 1;
/** The group's xxh3 differs or was unknown: every block's content hash is in `hashes`. */
export const GROUP_HASHED = 2;

/**
 * One chunk of whole scan groups. `meta` = [blocks, block size, length of the last block,
 * blocks per group]; `input` the chunk as read; `quick` holds each group's previous scan hash on
 * the way in (0 = unknown) and its new one on the way out; `status` one GROUP_* per group;
 * `hashes` 32 bytes a block, filled for the blocks of GROUP_HASHED groups.
 */
export interface ScanMemory {
  meta: SharedArrayBuffer;
  input: SharedArrayBuffer;
  quick: SharedArrayBuffer;
  status: SharedArrayBuffer;
  hashes: SharedArrayBuffer;
}

export function allocateScan(maxBytes: number, maxBlocks: number, maxGroups: number): ScanMemory {
  return {
    meta: new SharedArrayBuffer(4 * 4),
    input: alignedSharedMemory(maxBytes),
    quick: new SharedArrayBuffer(8 * maxGroups),
    status: new SharedArrayBuffer(maxGroups),
    hashes: new SharedArrayBuffer(HASH_BYTES * maxBlocks),
  };
}

let scanHasher: ScanHasher | null = null;

/**
 * One xxh3 per group tells whether any block of it may have changed; only then is each of its
 * blocks hashed with BLAKE3 (its content address), here on the worker too.
 */
export function scanBatch(memory: ScanMemory): void {
  const meta = new Int32Array(memory.meta);
  const [blocks, blockSize, lastLength, perGroup] = meta as unknown as [
    number,
    number,
    number,
    number,
  ];
  const input = Buffer.from(memory.input);
  const quick = new BigUint64Array(memory.quick);
  const status = new Uint8Array(memory.status);
  const hashes = Buffer.from(memory.hashes);
  const hasher = (scanHasher ??= new ScanHasher());
  const length = (b: number): number => (b === blocks - 1 ? lastLength : blockSize);
  for (let g = 0, first = 0; first < blocks; g++, first += perGroup) {
    const count = Math.min(perGroup, blocks - first);
    const end = (first + count - 1) * blockSize + length(first + count - 1);
    const data = input.subarray(first * blockSize, end);
    if (isZero(data)) {
      status[g] = GROUP_ZERO;
      quick[g] = UNKNOWN_SCAN_HASH;
      continue;
    }
    const q = hasher.hash(data);
    if (q !== UNKNOWN_SCAN_HASH && q === quick[g]) {
      status[g] = GROUP_SAME;
      continue;
    }
    quick[g] = q;
    status[g] = GROUP_HASHED;
    for (let b = first; b < first + count; b++) {
      const block = input.subarray(b * blockSize, b * blockSize + length(b));
      (isZero(block) ? zeroHash(block.length) : hashBlock(block)).copy(hashes, b * HASH_BYTES);
    }
  }
}
