import { zstdBound } from './block-codec.js';

/**
 * Shared memory of one compression batch, laid out identically on both threads:
 * `meta` = [count, raw length × maxBlocks, stored length × maxBlocks] (Int32), `codecs` one byte
 * per block, `input` the raw blocks back to back, `output` each block's stored form at the sum of
 * the zstd bounds of the blocks before it.
 */
export interface CompressSlot {
  meta: Int32Array;
  codecs: Uint8Array;
  input: Buffer;
  output: Buffer;
}

/** The SharedArrayBuffers behind a slot: what crosses to the worker. */
export interface SlotMemory {
  meta: SharedArrayBuffer;
  codecs: SharedArrayBuffer;
  input: SharedArrayBuffer;
  output: SharedArrayBuffer;
}

export const BATCH_HEADER = 1;

export interface CompressWorkerData {
  slots: SlotMemory[];
  level: number;
}

export interface CompressRequest {
  slot: number;
}

export interface CompressReply {
  slot: number;
  error?: string;
}

export function allocateSlot(maxBatchBytes: number, maxBlocks: number): SlotMemory {
  // zstdBound(x) ≤ x + x/256 + 64 for every block length: the output can never overflow.
  const outputBytes = maxBatchBytes + Math.ceil(maxBatchBytes / 256) + 64 * maxBlocks + 64;
  return {
    meta: new SharedArrayBuffer(4 * (BATCH_HEADER + 2 * maxBlocks)),
    codecs: new SharedArrayBuffer(maxBlocks),
    input: new SharedArrayBuffer(maxBatchBytes),
    output: new SharedArrayBuffer(outputBytes),
  };
}

export function slotViews(memory: SlotMemory): CompressSlot {
  return {
    meta: new Int32Array(memory.meta),
    codecs: new Uint8Array(memory.codecs),
    input: Buffer.from(memory.input),
    output: Buffer.from(memory.output),
  };
}

/** Where block `i` of a batch starts in the output: the sum of the bounds of those before it. */
export function compressSlot(
  slot: CompressSlot,
  compress: (data: Buffer, into: Buffer) => { codec: number; length: number },
): void {
  const count = slot.meta[0] as number;
  for (let i = 0, inAt = 0, outAt = 0; i < count; i++) {
    const raw = slot.meta[BATCH_HEADER + i] as number;
    const bound = zstdBound(raw);
    const { codec, length } = compress(
      slot.input.subarray(inAt, inAt + raw),
      slot.output.subarray(outAt, outAt + bound),
    );
    slot.codecs[i] = codec;
    slot.meta[BATCH_HEADER + count + i] = length;
    inAt += raw;
    outAt += bound;
  }
}
