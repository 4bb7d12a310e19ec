// The bulk work on blocks that can run on a second thread: batches in shared memory, laid out
// identically on both sides, and the functions that process them (used by the block worker
// and, where no worker can start, inline with the same results).
import { createHash } from 'node:crypto';
import { BlockCodec, zstdBound } from './block-codec.js';
import { sealBatch, type SealJob } from './encryption/seal-work.js';
import { alignedSharedMemory } from './aligned-buffer.js';
import { takeSharedMemory } from './shared-memory-pool.js';
import { HASH_BYTES, hashBlock, isZero, zeroHash } from './block-hash.js';

/**
 * Blocks to compress. `meta` = [count, raw length × max, stored length × max] (max = the
 * length of `codecs`); `input` the raw
 * blocks back to back; `output` block i's stored form at the sum of the zstd bounds of the blocks
 * before it; `codecs` one byte per block.
 */
export interface CompressMemory {
  meta: SharedArrayBuffer;
  codecs: SharedArrayBuffer;
  input: SharedArrayBuffer;
  output: SharedArrayBuffer;
}

/**
 * Stored blocks to decompress and check. `meta` = [count, input offset × max, stored length ×
 * max, raw length × max]; `codecs` and `status` one byte per block; `hashes` the expected
 * content hash of each block; `output` the raw blocks back to back.
 */
export interface InflateMemory {
  meta: SharedArrayBuffer;
  codecs: SharedArrayBuffer;
  status: SharedArrayBuffer;
  hashes: SharedArrayBuffer;
  input: SharedArrayBuffer;
  output: SharedArrayBuffer;
}

/**
 * Consecutive blocks to hash (a restore's read-back). `meta` = [count, block size, length of
 * the last block]; `hashes` receives each block's content hash (a zero block's is the zero
 * hash, as in a state map).
 */
export interface HashMemory {
  meta: SharedArrayBuffer;
  input: SharedArrayBuffer;
  hashes: SharedArrayBuffer;
}

export type BlockJob =
  | { op: 'compress'; memory: CompressMemory; level: number }
  | { op: 'inflate'; memory: InflateMemory; check: boolean }
  | { op: 'hash'; memory: HashMemory }
  | SealJob
  /** SHA-256 of `input`'s first `length` bytes into `digest` (an S3 part's signed checksum). */
  | { op: 'sha256'; input: SharedArrayBuffer; length: number; digest: SharedArrayBuffer };

export const INFLATE_OK = 1;
export const INFLATE_DAMAGED = 2;
export const INFLATE_WRONG_HASH = 3;

export function allocateCompress(maxBytes: number, maxBlocks: number): CompressMemory {
  // zstdBound(x) ≤ x + x/256 + 64 for every block length: the output can never overflow.
  return {
    meta: new SharedArrayBuffer(4 * (1 + 2 * maxBlocks)),
    codecs: new SharedArrayBuffer(maxBlocks),
    input: takeSharedMemory(maxBytes),
    output: takeSharedMemory(maxBytes + Math.ceil(maxBytes / 256) + 64 * maxBlocks + 64),
  };
}

export function allocateInflate(
  maxInput: number,
  maxOutput: number,
  maxBlocks: number,
): InflateMemory {
  return {
    meta: new SharedArrayBuffer(4 * (1 + 3 * maxBlocks)),
    codecs: new SharedArrayBuffer(maxBlocks),
    status: new SharedArrayBuffer(maxBlocks),
    hashes: new SharedArrayBuffer(HASH_BYTES * maxBlocks),
    input: alignedSharedMemory(maxInput),
    output: alignedSharedMemory(maxOutput),
  };
}

export function allocateHash(maxBytes: number, maxBlocks: number): HashMemory {
  return {
    meta: new SharedArrayBuffer(4 * 3),
    input: alignedSharedMemory(maxBytes),
    hashes: new SharedArrayBuffer(HASH_BYTES * maxBlocks),
  };
}

/** Codecs kept per thread: a zstd context costs a few hundred KB to set up. */
const codecs = new Map<number, BlockCodec>();
function codecFor(level: number): BlockCodec {
  let codec = codecs.get(level);
  if (!codec) {
    codec = new BlockCodec(1 << 16, level);
    codecs.set(level, codec);
  }
  return codec;
}

export function runBlockJob(job: BlockJob): void {
  if (job.op === 'compress') compressBatch(job.memory, job.level);
  else if (job.op === 'inflate') inflateBatch(job.memory, job.check);
  else if (job.op === 'hash') hashBatch(job.memory);
  else if (job.op === 'seal') sealBatch(job);
  else
    createHash('sha256')
      .update(new Uint8Array(job.input, 0, job.length))
      .digest()
      .copy(Buffer.from(job.digest));
}

function compressBatch(memory: CompressMemory, level: number): void {
  const meta = new Int32Array(memory.meta);
  const codecsOut = new Uint8Array(memory.codecs);
  const input = Buffer.from(memory.input);
  const output = Buffer.from(memory.output);
  const codec = codecFor(level);
  const count = meta[0] as number;
  const m = codecsOut.length;
  for (let i = 0, inAt = 0, outAt = 0; i < count; i++) {
    const raw = meta[1 + i] as number;
    const bound = zstdBound(raw);
    const r = codec.compressInto(
      input.subarray(inAt, inAt + raw),
      output.subarray(outAt, outAt + bound),
    );
    codecsOut[i] = r.codec;
    meta[1 + m + i] = r.length;
    inAt += raw;
    outAt += bound;
  }
}

function inflateBatch(memory: InflateMemory, check: boolean): void {
  const meta = new Int32Array(memory.meta);
  const codecsIn = new Uint8Array(memory.codecs);
  const status = new Uint8Array(memory.status);
  const hashes = Buffer.from(memory.hashes);
  const input = Buffer.from(memory.input);
  const output = Buffer.from(memory.output);
  const codec = codecFor(3);
  const count = meta[0] as number;
  const m = codecsIn.length;
  for (let i = 0, outAt = 0; i < count; i++) {
    const inAt = meta[1 + i] as number;
    const stored = meta[1 + m + i] as number;
    const raw = meta[1 + 2 * m + i] as number;
    const out = output.subarray(outAt, outAt + raw);
    outAt += raw;
    if (!codec.decodeInto(codecsIn[i] as number, input.subarray(inAt, inAt + stored), out)) {
      status[i] = INFLATE_DAMAGED;
      continue;
    }
    if (!check) {
      status[i] = INFLATE_OK;
      continue;
    }
    const expected = hashes.subarray(i * HASH_BYTES, (i + 1) * HASH_BYTES);
    status[i] = hashBlock(out).equals(expected) ? INFLATE_OK : INFLATE_WRONG_HASH;
  }
}

function hashBatch(memory: HashMemory): void {
  const meta = new Int32Array(memory.meta);
  const input = Buffer.from(memory.input);
  const hashes = Buffer.from(memory.hashes);
  const [count, blockSize, lastLength] = meta as unknown as [number, number, number];
  for (let i = 0; i < count; i++) {
    const length = i === count - 1 ? lastLength : blockSize;
    const data = input.subarray(i * blockSize, i * blockSize + length);
    const hash = isZero(data) ? zeroHash(length) : hashBlock(data);
    hash.copy(hashes, i * HASH_BYTES);
  }
}
