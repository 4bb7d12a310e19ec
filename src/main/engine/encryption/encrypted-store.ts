import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { TidemarkError } from '../../../shared/errors.js';
import type { ObjectStore, ObjectWriter } from '../storage/object-store.js';

export const ENCRYPTED_MAGIC = Buffer.from('TMKENC01', 'latin1');
/** Magic (8) and the object's random IV prefix (8). */
export const ENCRYPTED_HEADER_BYTES = 16;
const TAG = 16;

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
    return new EncryptedWriter(writer, name, this.key, prefix, this.chunkSize);
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
    await this.inner.close();
  }
}

function iv(prefix: Buffer, index: number): Buffer {
  const b = Buffer.allocUnsafe(12);
  prefix.copy(b, 0);
  b.writeUInt32BE(index, 8);
  return b;
}

function chunkAad(name: string, index: number, final: boolean): Buffer {
  return Buffer.from(`${name}\0${index}\0${final ? 1 : 0}`, 'utf8');
}

function openChunk(key: Buffer, name: string, o: Opened, index: number, sealed: Buffer): Buffer {
  if (sealed.length < TAG) throw damaged(name, `chunk ${index} is cut short`);
  try {
    const d = createDecipheriv('aes-256-gcm', key, iv(o.prefix, index));
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

class EncryptedWriter implements ObjectWriter {
  length = 0;
  private chunk: Buffer;
  private readonly sealed: Buffer;
  private used = 0;
  private index = 0;

  constructor(
    private readonly inner: ObjectWriter,
    readonly name: string,
    private readonly key: Buffer,
    private readonly prefix: Buffer,
    chunkSize: number,
  ) {
    this.chunk = Buffer.allocUnsafe(chunkSize);
    this.sealed = Buffer.allocUnsafe(chunkSize + TAG);
  }

  async write(data: Uint8Array): Promise<void> {
    let at = 0;
    while (at < data.length) {
      // A full chunk is sealed only once more data follows: the last chunk is marked final.
      if (this.used === this.chunk.length) await this.seal(false);
      const n = Math.min(data.length - at, this.chunk.length - this.used);
      this.chunk.set(data.subarray(at, at + n), this.used);
      this.used += n;
      at += n;
    }
    this.length += data.length;
  }

  private async seal(final: boolean): Promise<void> {
    const c = createCipheriv('aes-256-gcm', this.key, iv(this.prefix, this.index));
    c.setAAD(chunkAad(this.name, this.index, final));
    // One reused output buffer instead of a concatenation per chunk: one write per chunk for the
    // folder store, and no 64 KiB garbage per chunk for the collector.
    let n = c.update(this.chunk.subarray(0, this.used)).copy(this.sealed, 0);
    n += c.final().copy(this.sealed, n);
    n += c.getAuthTag().copy(this.sealed, n);
    await this.inner.write(this.sealed.subarray(0, n));
    this.index++;
    this.used = 0;
  }

  async commit(): Promise<void> {
    try {
      await this.seal(true);
    } catch (err) {
      await this.inner.abort();
      throw err;
    }
    await this.inner.commit();
  }

  abort(): Promise<void> {
    return this.inner.abort();
  }
}
