import { createDecipheriv, randomBytes } from 'node:crypto';
import { TidemarkError } from '../../../shared/errors.js';
import { BlockWorker } from '../block-worker-client.js';
import { keepSharedMemory } from '../shared-memory-pool.js';
import { SlotPool } from '../slot-pool.js';
import type { ObjectStore, ObjectWriter } from '../storage/object-store.js';
import { allocateSeal, chunkAad, chunkIv, TAG_BYTES, type SealMemory } from './seal-work.js';

export const ENCRYPTED_MAGIC = Buffer.from('TMKENC01', 'latin1');
/** Magic (8) and the object's random IV prefix (8). */
export const ENCRYPTED_HEADER_BYTES = 16;
const TAG = TAG_BYTES;
/** Plaintext sealed per job on the sealing thread: few messages, and memory stays small. */
const SEAL_BATCH = 2 << 20;

interface Opened {
  prefix: Buffer;
  cipherSize: number;
  plainSize: number;
  chunks: number;
}

/**
 * Every object of an encrypted archive (all but the manifest) through AES-256-GCM, in chunks of
 * `chunkSize` plaintext bytes so that a range read decrypts only the chunks it touches. Chunk i
 * has IV = the object's random 8-byte prefix | u32 i, and is authenticated together with the
 * object's name, i and whether it is the last chunk: a flipped bit, a swapped, reordered or
 * dropped chunk, a truncated object or an object moved to another name all fail authentication
 * and are reported as `archive.corrupt` naming the object.
 */
export class EncryptedStore implements ObjectStore {
  readonly location: string;
  private readonly opened = new Map<string, Opened>();
  /** Seals every writer's chunks off the engine's thread, started with the first object. */
  private sealer: BlockWorker | null = null;

  constructor(
    private readonly inner: ObjectStore & { close(): Promise<void> },
    private readonly key: Buffer,
    readonly chunkSize: number,
  ) {
    this.location = inner.location;
  }

  async create(name: string): Promise<ObjectWriter> {
    const writer = await this.inner.create(name);
    const prefix = randomBytes(8);
    await writer.write(Buffer.concat([ENCRYPTED_MAGIC, prefix]));
    this.sealer ??= new BlockWorker();
    return new EncryptedWriter(writer, name, this.key, prefix, this.chunkSize, this.sealer);
  }

  private async open(name: string): Promise<Opened> {
    let o = this.opened.get(name);
    if (o) return o;
    const cipherSize = await this.inner.size(name);
    const body = cipherSize - ENCRYPTED_HEADER_BYTES;
    if (body < TAG) throw damaged(name, 'too short');
    const header = await this.inner.read(name, 0, ENCRYPTED_HEADER_BYTES);
    if (!header.subarray(0, 8).equals(ENCRYPTED_MAGIC))
      throw damaged(name, 'not encrypted by Tidemark');
    const chunks = Math.ceil(body / (this.chunkSize + TAG));
    o = {
      prefix: Buffer.from(header.subarray(8)),
      cipherSize,
      plainSize: body - chunks * TAG,
      chunks,
    };
    this.opened.set(name, o);
    return o;
  }

  async read(name: string, offset: number, length: number, into?: Buffer): Promise<Buffer> {
    const o = await this.open(name);
    const out = into ?? Buffer.allocUnsafe(length);
    if (offset + length > o.plainSize)
      throw new TidemarkError('archive.corrupt', `${name} is shorter than expected (truncated)`);
    if (length === 0) return out.subarray(0, 0);
    const cs = this.chunkSize;
    const first = Math.floor(offset / cs);
    const last = Math.floor((offset + length - 1) / cs);
    const from = ENCRYPTED_HEADER_BYTES + first * (cs + TAG);
    const to = Math.min(ENCRYPTED_HEADER_BYTES + (last + 1) * (cs + TAG), o.cipherSize);
    const sealed = await this.inner.read(name, from, to - from);
    let done = 0;
    for (let i = first; i <= last; i++) {
      const at = (i - first) * (cs + TAG);
      const end = Math.min(at + cs + TAG, sealed.length);
      const plain = openChunk(this.key, name, o, i, sealed.subarray(at, end));
      const start = i === first ? offset - first * cs : 0;
      const n = Math.min(plain.length - start, length - done);
      plain.copy(out, done, start, start + n);
      done += n;
    }
    return out.subarray(0, length);
  }

  async size(name: string): Promise<number> {
    return (await this.open(name)).plainSize;
  }

  exists(name: string): Promise<boolean> {
    return this.inner.exists(name);
  }

  list(prefix: string): Promise<string[]> {
    return this.inner.list(prefix);
  }

  async delete(name: string): Promise<void> {
    this.opened.delete(name);
    await this.inner.delete(name);
  }

  removeIncomplete(): Promise<number> {
    return this.inner.removeIncomplete();
  }

  async close(): Promise<void> {
    this.opened.clear();
    await this.sealer?.close();
    this.sealer = null;
    await this.inner.close();
  }
}

function openChunk(key: Buffer, name: string, o: Opened, index: number, sealed: Buffer): Buffer {
  if (sealed.length < TAG) throw damaged(name, `chunk ${index} is cut short`);
  try {
    const d = createDecipheriv('aes-256-gcm', key, chunkIv(o.prefix, index));
    d.setAAD(chunkAad(name, index, index === o.chunks - 1));
    d.setAuthTag(sealed.subarray(sealed.length - TAG));
    return Buffer.concat([d.update(sealed.subarray(0, sealed.length - TAG)), d.final()]);
  } catch {
    throw damaged(name, `chunk ${index} fails authentication`);
  }
}

function damaged(name: string, why: string): TidemarkError {
  return new TidemarkError('archive.corrupt', `${name}: damaged or tampered with (${why})`);
}

interface SealSlot {
  memory: SealMemory;
  meta: Int32Array;
  input: Buffer;
  output: Buffer;
}

/**
 * Gathers plaintext into batches of whole chunks in shared memory and has them sealed on the
 * sealing thread, in order, while the next batch fills; sealed batches go to the inner writer
 * in order. Two slots: the engine's thread copies into one while the other is sealed or
 * written. A full batch is sealed only once more data follows, so the object's last chunk is
 * always sealed as final, by `commit`.
 */
class EncryptedWriter implements ObjectWriter {
  length = 0;
  private readonly slots: SlotPool<SealSlot>;
  private slot: SealSlot | null = null;
  private used = 0;
  private nextIndex = 0;
  private readonly batchBytes: number;
  /** The sealing and inner writing of submitted batches, in order. */
  private writing: Promise<void> = Promise.resolve();
  private failure: unknown = null;

  constructor(
    private readonly inner: ObjectWriter,
    readonly name: string,
    private readonly key: Buffer,
    private readonly prefix: Buffer,
    private readonly chunkSize: number,
    private readonly sealer: BlockWorker,
  ) {
    const chunks = Math.max(1, Math.floor(SEAL_BATCH / chunkSize));
    this.batchBytes = chunks * chunkSize;
    this.slots = new SlotPool<SealSlot>(2, () => {
      const memory = allocateSeal(chunkSize, chunks);
      return {
        memory,
        meta: new Int32Array(memory.meta),
        input: Buffer.from(memory.input),
        output: Buffer.from(memory.output),
      };
    });
  }

  async write(data: Uint8Array): Promise<void> {
    let at = 0;
    while (at < data.length) {
      if (this.failure) throw this.failure;
      if (this.slot && this.used === this.batchBytes) this.submit(false);
      const slot = (this.slot ??= await this.slots.take());
      const n = Math.min(data.length - at, this.batchBytes - this.used);
      slot.input.set(data.subarray(at, at + n), this.used);
      this.used += n;
      at += n;
    }
    this.length += data.length;
  }

  /** Hands the current batch to the sealing thread; its inner write is queued behind the others. */
  private submit(final: boolean): void {
    const slot = this.slot;
    const used = this.used;
    const firstIndex = this.nextIndex;
    this.nextIndex += Math.ceil(used / this.chunkSize);
    this.slot = null;
    this.used = 0;
    const sealing = (async () => {
      const s = slot ?? (await this.slots.take());
      s.meta[0] = used;
      try {
        await this.sealer.run({
          op: 'seal',
          memory: s.memory,
          key: this.key,
          prefix: this.prefix,
          name: this.name,
          chunkSize: this.chunkSize,
          firstIndex,
          final,
        });
      } catch (err) {
        this.slots.give(s);
        throw err;
      }
      return s;
    })();
    const previous = this.writing;
    this.writing = (async () => {
      let s: SealSlot | null = null;
      try {
        s = await sealing;
        await previous;
        if (this.failure) return;
        await this.inner.write(s.output.subarray(0, s.meta[1] as number));
      } catch (err) {
        this.failure ??= err;
      } finally {
        if (s) this.slots.give(s);
      }
    })();
  }

  async commit(): Promise<void> {
    try {
      this.submit(true);
      await this.writing;
      if (this.failure) throw this.failure;
    } catch (err) {
      this.keepSlots();
      await this.inner.abort();
      throw err;
    }
    this.keepSlots();
    await this.inner.commit();
  }

  async abort(): Promise<void> {
    this.slot = null;
    await this.writing;
    this.keepSlots();
    await this.inner.abort();
  }

  /** Once every batch is sealed and written: the sealing thread is done with the slots. */
  private keepSlots(): void {
    for (const s of this.slots.drain()) keepSharedMemory(s.memory.input, s.memory.output);
  }
}
