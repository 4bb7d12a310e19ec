import { xxh3 } from '@node-rs/xxhash';

/**
 * The fast hash a scan compares blocks with: xxh3-64, about 3× cheaper than BLAKE3 here, so an
 * unchanged block costs a read and an xxh3. A block whose xxh3 differs is hashed with BLAKE3
 * (its content address). Equal content always has equal xxh3, so no change is ever invented;
 * a change is missed only if a new content collides with the old one in 64 bits (about 2^-64
 * per changed block, and never for content chosen without knowledge of the old block).
 * 0n means "not known" (after a catalog rebuild, or for zero blocks) and forces BLAKE3.
 */
export class ScanHasher {
  private readonly hasher = xxh3.Xxh3.withSeed(0n);

  hash(data: Uint8Array): bigint {
    this.hasher.reset();
    this.hasher.update(data);
    return this.hasher.digest();
  }
}

export const UNKNOWN_SCAN_HASH = 0n;
