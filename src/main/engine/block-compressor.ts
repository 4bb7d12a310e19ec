import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { TidemarkError } from '../../shared/errors.js';
import { BlockCodec, CODEC_RAW, zstdBound } from './block-codec.js';
import {
  allocateSlot,
  BATCH_HEADER,
  compressSlot,
  slotViews,
  type CompressReply,
  type CompressRequest,
  type CompressSlot,
  type CompressWorkerData,
  type SlotMemory,
} from './compress-protocol.js';

/** One batch's stored forms, in the order its blocks were given; valid until `release`. */
export interface CompressedBatch {
  readonly count: number;
  codec(i: number): number;
  /** The stored bytes of block `i` (a view into the batch's shared memory). */
  bytes(i: number): Buffer;
  release(): void;
}

// Beside this module, both as compiled by tsc (out/node/main/engine/) and as bundled by
// electron-vite (out/main/, where the engine worker and this worker are entries side by side).
const WORKER_FILE = path.join(path.dirname(fileURLToPath(import.meta.url)), 'compress-worker.js');

/** Two slots: the worker compresses one batch while the scan fills the other. */
const SLOTS = 2;

/**
 * Compresses blocks on a worker thread, so that zstd (the costliest step of storing a block)
 * runs on the second core while the scan reads and hashes the next chunk on this one. A batch is
 * copied into shared memory at `submit`, so the caller may reuse its read buffer at once.
 * Where the compiled worker script is missing (the engine run from its TypeScript sources) the
 * batch is compressed on this thread instead, with the same results.
 */
export class BlockCompressor {
  private readonly memory: SlotMemory[] = [];
  private readonly slots: CompressSlot[] = [];
  private readonly free: number[] = [];
  private readonly waitingForSlot: Array<() => void> = [];
  private readonly inFlight = new Map<
    number,
    { resolve: (b: CompressedBatch) => void; reject: (e: Error) => void }
  >();
  private worker: Worker | null = null;
  private inline: BlockCodec | null = null;
  private failure: Error | null = null;

  private constructor(
    private readonly maxBatchBytes: number,
    private readonly maxBlocks: number,
    private readonly level: number,
  ) {
    for (let i = 0; i < SLOTS; i++) {
      const memory = allocateSlot(maxBatchBytes, maxBlocks);
      this.memory.push(memory);
      this.slots.push(slotViews(memory));
      this.free.push(i);
    }
  }

  /** A compressor for batches of at most `maxBlocks` blocks and `maxBatchBytes` bytes. */
  static create(maxBatchBytes: number, maxBlocks: number, level = 3): BlockCompressor {
    const c = new BlockCompressor(maxBatchBytes, maxBlocks, level);
    if (fs.existsSync(WORKER_FILE)) c.startWorker();
    else c.inline = new BlockCodec(maxBatchBytes, level);
    return c;
  }

  /** Copies `blocks` into a free slot and compresses them; resolves when all are compressed. */
  async submit(blocks: readonly Buffer[]): Promise<CompressedBatch> {
    if (this.failure) throw this.failure;
    if (blocks.length > this.maxBlocks)
      throw new TidemarkError('internal', `a batch of ${blocks.length} blocks is too large`);
    const slotIndex = await this.takeSlot();
    const slot = this.slots[slotIndex] as CompressSlot;
    let at = 0;
    for (let i = 0; i < blocks.length; i++) {
      const block = blocks[i] as Buffer;
      if (at + block.length > this.maxBatchBytes) {
        this.free.push(slotIndex);
        throw new TidemarkError('internal', 'a compression batch exceeds its slot');
      }
      slot.input.set(block, at);
      slot.meta[BATCH_HEADER + i] = block.length;
      at += block.length;
    }
    slot.meta[0] = blocks.length;
    const done = this.inline ? Promise.resolve(this.compressInline(slot)) : this.post(slotIndex);
    await done;
    return this.batchOf(slotIndex);
  }

  async close(): Promise<void> {
    const worker = this.worker;
    this.worker = null;
    if (worker) await worker.terminate();
  }

  private startWorker(): void {
    const workerData: CompressWorkerData = { slots: this.memory, level: this.level };
    const worker = new Worker(WORKER_FILE, { workerData });
    // A scan that ends (or fails) without close() must not keep the process alive.
    worker.unref();
    worker.on('message', (reply: CompressReply) => {
      const pending = this.inFlight.get(reply.slot);
      this.inFlight.delete(reply.slot);
      if (!pending) return;
      if (reply.error) pending.reject(new TidemarkError('internal', `zstd: ${reply.error}`));
      else pending.resolve(this.batchOf(reply.slot));
    });
    const fail = (err: Error): void => {
      this.failure = new TidemarkError('internal', `the compression worker failed: ${err.message}`);
      for (const p of this.inFlight.values()) p.reject(this.failure);
      this.inFlight.clear();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => {
      if (this.worker === worker) fail(new Error(`exited with code ${code}`));
    });
    this.worker = worker;
  }

  private post(slot: number): Promise<CompressedBatch> {
    return new Promise((resolve, reject) => {
      this.inFlight.set(slot, { resolve, reject });
      const request: CompressRequest = { slot };
      (this.worker as Worker).postMessage(request);
    });
  }

  private compressInline(slot: CompressSlot): void {
    const codec = this.inline as BlockCodec;
    compressSlot(slot, (data, into) => codec.compressInto(data, into));
  }

  private takeSlot(): Promise<number> {
    const slot = this.free.pop();
    if (slot !== undefined) return Promise.resolve(slot);
    return new Promise((resolve) =>
      this.waitingForSlot.push(() => resolve(this.free.pop() as number)),
    );
  }

  private batchOf(slotIndex: number): CompressedBatch {
    const slot = this.slots[slotIndex] as CompressSlot;
    const count = slot.meta[0] as number;
    const inputOffsets = new Float64Array(count);
    const outputOffsets = new Float64Array(count);
    for (let i = 0, inAt = 0, outAt = 0; i < count; i++) {
      inputOffsets[i] = inAt;
      outputOffsets[i] = outAt;
      const raw = slot.meta[BATCH_HEADER + i] as number;
      inAt += raw;
      outAt += zstdBound(raw);
    }
    let released = false;
    return {
      count,
      codec: (i) => slot.codecs[i] as number,
      bytes: (i) => {
        const stored = slot.meta[BATCH_HEADER + count + i] as number;
        return slot.codecs[i] === CODEC_RAW
          ? slot.input.subarray(inputOffsets[i], (inputOffsets[i] as number) + stored)
          : slot.output.subarray(outputOffsets[i], (outputOffsets[i] as number) + stored);
      },
      release: () => {
        if (released) return;
        released = true;
        this.free.push(slotIndex);
        this.waitingForSlot.shift()?.();
      },
    };
  }
}
