import { TidemarkError } from '../../shared/errors.js';
import { CODEC_RAW, zstdBound } from './block-codec.js';
import { allocateCompress, type CompressMemory } from './block-work.js';
import { BlockWorker } from './block-worker-client.js';
import { keepSharedMemory } from './shared-memory-pool.js';
import { SlotPool } from './slot-pool.js';

/** One batch's stored forms, in the order its blocks were given; valid until `release`. */
export interface CompressedBatch {
  readonly count: number;
  codec(i: number): number;
  /** The stored bytes of block `i` (a view into the batch's shared memory). */
  bytes(i: number): Buffer;
  release(): void;
}

interface Slot {
  memory: CompressMemory;
  meta: Int32Array;
  codecs: Uint8Array;
  input: Buffer;
  output: Buffer;
  /** Start of each block in `input` and in `output`, filled at submit. */
  inputAt: Float64Array;
  outputAt: Float64Array;
}

/**
 * Compresses blocks on the block worker, so that zstd (the costliest step of storing a block)
 * runs on a second core while the scan reads and hashes the next chunk. A batch is copied into
 * shared memory at `submit`, so the caller may refill its read buffer at once; two slots let
 * one batch be compressed while the next is filled.
 */
export class BlockCompressor {
  private readonly worker = new BlockWorker();
  private readonly slots: SlotPool<Slot>;

  constructor(
    private readonly maxBatchBytes: number,
    private readonly maxBlocks: number,
    private readonly level = 3,
  ) {
    this.slots = new SlotPool<Slot>(2, (): Slot => {
      const memory = allocateCompress(maxBatchBytes, maxBlocks);
      return {
        memory,
        meta: new Int32Array(memory.meta),
        codecs: new Uint8Array(memory.codecs),
        input: Buffer.from(memory.input),
        output: Buffer.from(memory.output),
        inputAt: new Float64Array(maxBlocks),
        outputAt: new Float64Array(maxBlocks),
      };
    });
  }

  /**
   * Starts the worker thread now, so that its start-up (loading its modules takes a good part
   * of a second on a busy machine) overlaps the caller's own preparations and first reads.
   */
  start(): void {
    this.worker.start();
  }

  /**
   * Copies `blocks` into a free slot, waiting for one, and starts compressing them. Resolves
   * once they are copied: the caller may refill the buffers they came from at once, while
   * `batch` resolves when all of them are compressed.
   */
  async submit(blocks: readonly Buffer[]): Promise<{ batch: Promise<CompressedBatch> }> {
    if (blocks.length > this.maxBlocks)
      throw new TidemarkError('internal', `a batch of ${blocks.length} blocks is too large`);
    const slot = await this.slots.take();
    try {
      let inAt = 0;
      let outAt = 0;
      for (let i = 0; i < blocks.length; i++) {
        const block = blocks[i] as Buffer;
        if (inAt + block.length > this.maxBatchBytes)
          throw new TidemarkError('internal', 'a compression batch exceeds its slot');
        slot.input.set(block, inAt);
        slot.meta[1 + i] = block.length;
        slot.inputAt[i] = inAt;
        slot.outputAt[i] = outAt;
        inAt += block.length;
        outAt += zstdBound(block.length);
      }
      slot.meta[0] = blocks.length;
    } catch (err) {
      this.slots.give(slot);
      throw err;
    }
    return { batch: this.compress(slot, blocks.length) };
  }

  private async compress(slot: Slot, count: number): Promise<CompressedBatch> {
    try {
      await this.worker.run({ op: 'compress', memory: slot.memory, level: this.level });
    } catch (err) {
      this.slots.give(slot);
      throw err;
    }
    let released = false;
    return {
      count,
      codec: (i) => slot.codecs[i] as number,
      bytes: (i) => {
        const stored = slot.meta[1 + this.maxBlocks + i] as number;
        const from = slot.codecs[i] === CODEC_RAW ? slot.input : slot.output;
        const at = (slot.codecs[i] === CODEC_RAW ? slot.inputAt[i] : slot.outputAt[i]) as number;
        return from.subarray(at, at + stored);
      },
      release: () => {
        if (released) return;
        released = true;
        this.slots.give(slot);
      },
    };
  }

  async close(): Promise<void> {
    await this.worker.close();
    for (const slot of this.slots.drain()) keepSharedMemory(slot.memory.input, slot.memory.output);
  }
}
