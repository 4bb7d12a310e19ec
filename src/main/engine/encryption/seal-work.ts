// AES-256-GCM sealing of a batch of chunks in shared memory, run on the block worker's thread so
// that the engine's own thread only copies plaintext in and ciphertext out (see
// encrypted-store.ts for the layout of an encrypted object and what each chunk authenticates).
import { createCipheriv } from 'node:crypto';
import { takeSharedMemory } from '../shared-memory-pool.js';

export const TAG_BYTES = 16;

/**
 * One batch: `input` holds `meta[0]` plaintext bytes (whole chunks of `chunkSize`, the last one
 * possibly short), `output` receives each chunk sealed (ciphertext then tag) back to back and
 * `meta[1]` their total length.
 */
export interface SealMemory {
  meta: SharedArrayBuffer;
  input: SharedArrayBuffer;
  output: SharedArrayBuffer;
}

export interface SealJob {
  op: 'seal';
  memory: SealMemory;
  key: Uint8Array;
  /** The object's random 8-byte IV prefix. */
  prefix: Uint8Array;
  /** The object's name, bound into every chunk's associated data. */
  name: string;
  chunkSize: number;
  /** Index of the batch's first chunk within the object. */
  firstIndex: number;
  /** The batch ends the object: its last chunk is marked final (an empty object has one). */
  final: boolean;
}

export function allocateSeal(chunkSize: number, chunks: number): SealMemory {
  return {
    meta: new SharedArrayBuffer(8),
    input: takeSharedMemory(chunkSize * chunks),
    output: takeSharedMemory((chunkSize + TAG_BYTES) * chunks),
  };
}

export function chunkIv(prefix: Uint8Array, index: number): Buffer {
  const b = Buffer.allocUnsafe(12);
  b.set(prefix, 0);
  b.writeUInt32BE(index, 8);
  return b;
}

export function chunkAad(name: string, index: number, final: boolean): Buffer {
  return Buffer.from(`${name}\0${index}\0${final ? 1 : 0}`, 'utf8');
}

export function sealBatch(job: SealJob): void {
  const meta = new Int32Array(job.memory.meta);
  const input = Buffer.from(job.memory.input);
  const output = Buffer.from(job.memory.output);
  const length = meta[0] as number;
  const cs = job.chunkSize;
  const chunks = job.final ? Math.max(1, Math.ceil(length / cs)) : length / cs;
  let out = 0;
  for (let i = 0; i < chunks; i++) {
    const index = job.firstIndex + i;
    const c = createCipheriv('aes-256-gcm', job.key, chunkIv(job.prefix, index));
    c.setAAD(chunkAad(job.name, index, job.final && i === chunks - 1));
    out += c.update(input.subarray(i * cs, Math.min((i + 1) * cs, length))).copy(output, out);
    out += c.final().copy(output, out);
    out += c.getAuthTag().copy(output, out);
  }
  meta[1] = out;
}
