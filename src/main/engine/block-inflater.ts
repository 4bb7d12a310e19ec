import { TidemarkError } from '../../shared/errors.js';
import { zstdBound } from './block-codec.js';
import { HASH_BYTES } from './block-hash.js';
import { allocateInflate, INFLATE_OK, type InflateMemory } from './block-work.js';
import { BlockWorker } from './block-worker-client.js';
import { RECORD_HEADER_BYTES } from './format/update-format.js';
import { SlotPool } from './slot-pool.js';

/** Raw bytes one batch may decode to. */
const OUTPUT_BYTES = 16 << 20;

/**
 * A range of one update read into shared memory, with the records wanted from it. Fill `input`
 * (the range), then `add` each wanted record; `run` decodes and checks them on the block worker.
 */
export interface InflateBatch {
  readonly input: Buffer;
  /** Adds the record at `inputOffset` (its header's start) with its expected content hash. */
  add(
    inputOffset: number,
    storedLength: number,
    rawLength: number,
    codec: number,
    hash: Uint8Array,
  ): void;
  /** Whether another block of `rawLength` bytes still fits. */
  fits(rawLength: number): boolean;
  readonly count: number;
  /** Decodes every record added; then `ok(i)` and `output(i)` describe block i. */
  run(): Promise<void>;
  ok(i: number): boolean;
  output(i: number): Buffer;
  release(): void;
}

interface Slot {
  memory: InflateMemory;
  meta: Int32Array;
  codecs: Uint8Array;
  status: Uint8Array;
  hashes: Buffer;
  input: Buffer;
  output: Buffer;
  outputAt: Float64Array;
}

/**
 * Decompresses and checks stored blocks on the block worker (zstd and BLAKE3 on a second core)
 * while the restore reads the next range and writes the previous one. Two slots: one decoded
 * while the other is filled.
 */
export class BlockInflater {
  private readonly worker = new BlockWorker();
  private readonly slots: SlotPool<Slot>;
  /** Most blocks, and most raw bytes, one batch may hold. */
  readonly maxBlocks: number;
  readonly maxOutput: number;
  readonly maxInput: number;

  /**
   * `checkHashes: false` skips the BLAKE3 of each decoded block, for a restore whose read-back
   * proves every block anyway and whose result is thrown away if it fails (see restore.ts).
   */
  constructor(
    readRange: number,
    blockSize: number,
    private readonly checkHashes = true,
  ) {
    const outputBytes = Math.max(OUTPUT_BYTES, blockSize);
    this.maxOutput = outputBytes;
    this.maxBlocks = Math.ceil(outputBytes / blockSize);
    // A range holds whole records; one record alone may be larger than a range.
    this.maxInput = Math.max(readRange, RECORD_HEADER_BYTES + zstdBound(blockSize));
    this.slots = new SlotPool<Slot>(2, (): Slot => {
      const memory = allocateInflate(this.maxInput, outputBytes, this.maxBlocks);
      return {
        memory,
        meta: new Int32Array(memory.meta),
        codecs: new Uint8Array(memory.codecs),
        status: new Uint8Array(memory.status),
        hashes: Buffer.from(memory.hashes),
        input: Buffer.from(memory.input),
        output: Buffer.from(memory.output),
        outputAt: new Float64Array(this.maxBlocks + 1),
      };
    });
  }

  /** A batch whose `input` holds `inputBytes` bytes; waits while both slots are in use. */
  async batch(inputBytes: number): Promise<InflateBatch> {
    if (inputBytes > this.maxInput)
      throw new TidemarkError('internal', `a restore range of ${inputBytes} bytes is too large`);
    const slot = await this.slots.take();
    const maxBlocks = this.maxBlocks;
    let count = 0;
    let released = false;
    slot.outputAt[0] = 0;
    const batch: InflateBatch = {
      input: slot.input.subarray(0, inputBytes),
      get count() {
        return count;
      },
      fits: (rawLength) =>
        count < maxBlocks && (slot.outputAt[count] as number) + rawLength <= slot.output.length,
      add: (inputOffset, storedLength, rawLength, codec, hash) => {
        slot.meta[1 + count] = inputOffset + RECORD_HEADER_BYTES;
        slot.meta[1 + maxBlocks + count] = storedLength;
        slot.meta[1 + 2 * maxBlocks + count] = rawLength;
        slot.codecs[count] = codec;
        slot.hashes.set(hash, count * HASH_BYTES);
        slot.outputAt[count + 1] = (slot.outputAt[count] as number) + rawLength;
        count++;
      },
      run: async () => {
        slot.meta[0] = count;
        await this.worker.run({ op: 'inflate', memory: slot.memory, check: this.checkHashes });
      },
      ok: (i) => slot.status[i] === INFLATE_OK,
      output: (i) =>
        slot.output.subarray(slot.outputAt[i] as number, slot.outputAt[i + 1] as number),
      release: () => {
        if (released) return;
        released = true;
        this.slots.give(slot);
      },
    };
    return batch;
  }

  close(): Promise<void> {
    return this.worker.close();
  }
}
