import { HASH_BYTES } from '../block-hash.js';
import type { UpdateWriter } from '../format/update-writer.js';
import type { StateMap } from '../state-map.js';

/**
 * The block maps of several consecutive device updates laid over each other: for every block
 * touched in the range, its latest hash. One flat buffer of 32 bytes a block and one flag a
 * block, so merging allocates nothing per entry.
 */
export class MergedMap {
  private readonly hashes: Buffer;
  private readonly touched: Uint8Array;
  readonly blockCount: number;

  constructor(primarySize: number, blockSize: number) {
    this.blockCount = Math.ceil(primarySize / blockSize);
    this.hashes = Buffer.allocUnsafe(this.blockCount * HASH_BYTES);
    this.touched = new Uint8Array(this.blockCount);
  }

  set(index: number, hash: Uint8Array): void {
    this.hashes.set(hash.subarray(0, HASH_BYTES), index * HASH_BYTES);
    this.touched[index] = 1;
  }

  /** Hashes (latin1 keys) the merged map references. */
  referenced(): Set<string> {
    const keys = new Set<string>();
    for (let i = 0; i < this.blockCount; i++)
      if (this.touched[i])
        keys.add(this.hashes.toString('latin1', i * HASH_BYTES, (i + 1) * HASH_BYTES));
    return keys;
  }

  /** Lays the merged map over `map` (the parent state) and returns the resulting state hash. */
  applyTo(map: StateMap): string {
    for (let i = 0; i < this.blockCount; i++)
      if (this.touched[i]) map.set(i, this.hashes.subarray(i * HASH_BYTES, (i + 1) * HASH_BYTES));
    return map.stateHash();
  }

  /** Writes the map entries in block order; returns how many. */
  async writeTo(writer: UpdateWriter): Promise<number> {
    let n = 0;
    for (let i = 0; i < this.blockCount; i++) {
      if (!this.touched[i]) continue;
      await writer.addMapEntry(i, this.hashes.subarray(i * HASH_BYTES, (i + 1) * HASH_BYTES));
      n++;
    }
    return n;
  }
}
