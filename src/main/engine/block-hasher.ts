import { HASH_BYTES } from './block-hash.js';
import { allocateHash, type HashMemory } from './block-work.js';
import { BlockWorker } from './block-worker-client.js';
import { SlotPool } from './slot-pool.js';

interface Slot {
  memory: HashMemory;
  meta: Int32Array;
  input: Buffer;
  hashes: Buffer;
}

/** Consecutive blocks read into shared memory, hashed on the block worker by `run`. */
export interface HashBatch {
  /** Where the blocks are read to (as many bytes as the batch was asked for). */
  readonly input: Buffer;
  run(): Promise<void>;
  /** The content hashes, 32 bytes a block, once `run` resolved. */
  readonly hashes: Buffer;
  release(): void;
}

/**
 * Hashes runs of blocks (BLAKE3, zero blocks by their zero hash) on the block worker while the
 * next run is read: a restore's proof reads the target back at the speed of the slower of the
 * two, not of both in turn.
 */
export class BlockHasher {
  private readonly worker = new BlockWorker();
  private readonly slots: SlotPool<Slot>;

  constructor(
    private readonly blockSize: number,
    readonly maxBlocks: number,
  ) {
    this.slots = new SlotPool<Slot>(2, (): Slot => {
      const memory = allocateHash(blockSize * maxBlocks, maxBlocks);
      return {
        memory,
        meta: new Int32Array(memory.meta),
        input: Buffer.from(memory.input),
        hashes: Buffer.from(memory.hashes),
      };
    });
  }

  /** `count` blocks, the last of `lastLength` bytes; waits while both slots are in use. */
  async batch(count: number, lastLength: number): Promise<HashBatch> {
    const slot = await this.slots.take();
    slot.meta[0] = count;
    slot.meta[1] = this.blockSize;
    slot.meta[2] = lastLength;
    let released = false;
    return {
      input: slot.input.subarray(0, (count - 1) * this.blockSize + lastLength),
      hashes: slot.hashes.subarray(0, count * HASH_BYTES),
      run: () => this.worker.run({ op: 'hash', memory: slot.memory }),
      release: () => {
        if (released) return;
        released = true;
        this.slots.give(slot);
      },
    };
  }

  close(): Promise<void> {
    return this.worker.close();
  }
}
