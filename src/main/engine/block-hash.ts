import { blake3 } from '@napi-rs/blake-hash';

/** Length of every content hash (BLAKE3-256) used for blocks and states. */
export const HASH_BYTES = 32;

/** BLAKE3-256 of `data`. The 32-byte result is the only allocation (native call result). */
export function hashBlock(data: Uint8Array): Buffer {
  return blake3(data as Buffer);
}

const zeroHashes = new Map<number, Buffer>();
const zeroBuffers = new Map<number, Buffer>();

/** A shared all-zero buffer of `length` bytes; never write into it. */
export function zeroBuffer(length: number): Buffer {
  let buffer = zeroBuffers.get(length);
  if (!buffer) {
    buffer = Buffer.alloc(length);
    zeroBuffers.set(length, buffer);
  }
  return buffer;
}

/** Hash of a zero block of `length` bytes: zero blocks are recognised by it, never stored. */
export function zeroHash(length: number): Buffer {
  let hash = zeroHashes.get(length);
  if (!hash) {
    hash = hashBlock(zeroBuffer(length));
    zeroHashes.set(length, hash);
  }
  return hash;
}

/** memcmp against a zero page: far cheaper than hashing, and most free space is zeros. */
export function isZero(data: Buffer): boolean {
  return data.equals(zeroBuffer(data.length));
}
