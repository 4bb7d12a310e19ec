import type { ObjectStore, ObjectWriter } from '../storage/object-store.js';
import { BlockCodec } from '../block-codec.js';
import {
  encodeFileHeader,
  encodeTrailer,
  HEADER_BYTES,
  MAP_ENTRY_BYTES,
  MAP_FRAME_ENTRIES,
  MAP_FRAME_HEADER_BYTES,
  RECORD_HEADER_BYTES,
  writeMapEntry,
  writeRecordHeader,
  type UpdateMeta,
} from './update-format.js';

/** Where a stored block landed inside its update; the catalog indexes blocks by it. */
export interface StoredBlock {
  offset: number;
  storedLength: number;
  rawLength: number;
  codec: number;
}

const OUTPUT_BUFFER = 4 << 20;

/**
 * Streams one update object: stored blocks first, then the block map, the meta JSON and the
 * trailer. Output is gathered in a 4 MiB buffer so the store sees few, large writes. Nothing is
 * visible in the archive before `finish` has committed the object.
 */
export class UpdateWriter {
  private output = Buffer.allocUnsafe(OUTPUT_BUFFER);
  private outputUsed = 0;
  private position = 0;
  private readonly frame = Buffer.allocUnsafe(MAP_FRAME_ENTRIES * MAP_ENTRY_BYTES);
  private frameEntries = 0;
  private readonly mapFrames: Buffer[] = [];
  private readonly codec: BlockCodec;
  mapEntries = 0;
  storedBlocks = 0;

  private constructor(
    private readonly writer: ObjectWriter,
    blockSize: number,
  ) {
    this.codec = new BlockCodec(blockSize);
  }

  static async create(store: ObjectStore, name: string, blockSize: number): Promise<UpdateWriter> {
    const writer = await store.create(name);
    const w = new UpdateWriter(writer, blockSize);
    await w.append(encodeFileHeader());
    return w;
  }

  get bytesWritten(): number {
    return this.position;
  }

  /** Stores one block (compressed when that helps) and returns where it lives. */
  async addBlock(hash: Buffer, data: Buffer): Promise<StoredBlock> {
    const { codec, bytes } = this.codec.compress(data);
    if (this.outputUsed + RECORD_HEADER_BYTES > this.output.length) await this.flush();
    const offset = this.position;
    writeRecordHeader(this.output.subarray(this.outputUsed), {
      hash,
      rawLength: data.length,
      storedLength: bytes.length,
      codec,
    });
    this.outputUsed += RECORD_HEADER_BYTES;
    this.position += RECORD_HEADER_BYTES;
    await this.append(bytes);
    this.storedBlocks++;
    return { offset, storedLength: bytes.length, rawLength: data.length, codec };
  }

  /** Records that block `blockIndex` of the new state has content `hash`. */
  addMapEntry(blockIndex: number, hash: Uint8Array): void {
    writeMapEntry(this.frame, this.frameEntries * MAP_ENTRY_BYTES, blockIndex, hash);
    this.frameEntries++;
    this.mapEntries++;
    if (this.frameEntries === MAP_FRAME_ENTRIES) this.closeFrame();
  }

  private closeFrame(): void {
    if (this.frameEntries === 0) return;
    const { codec, bytes } = this.codec.compress(this.frame.subarray(0, this.frameEntries * MAP_ENTRY_BYTES));
    const framed = Buffer.allocUnsafe(MAP_FRAME_HEADER_BYTES + bytes.length + 1);
    framed.writeUInt32LE(bytes.length + 1, 0);
    framed.writeUInt32LE(this.frameEntries, 4);
    framed.writeUInt8(codec, 8);
    bytes.copy(framed, 9);
    this.mapFrames.push(framed);
    this.frameEntries = 0;
  }

  private async append(bytes: Uint8Array): Promise<void> {
    if (bytes.length > this.output.length - this.outputUsed) await this.flush();
    if (bytes.length > this.output.length) {
      await this.writer.write(bytes);
    } else {
      this.output.set(bytes, this.outputUsed);
      this.outputUsed += bytes.length;
    }
    this.position += bytes.length;
  }

  private async flush(): Promise<void> {
    if (this.outputUsed === 0) return;
    await this.writer.write(this.output.subarray(0, this.outputUsed));
    this.outputUsed = 0;
  }

  /** Writes map, meta and trailer, then makes the update durable and visible. Returns its size. */
  async finish(meta: UpdateMeta): Promise<number> {
    this.closeFrame();
    await this.flush();
    const mapOffset = this.position;
    for (const frame of this.mapFrames) await this.append(frame);
    const metaBytes = Buffer.from(JSON.stringify(meta), 'utf8');
    const metaOffset = this.position;
    await this.append(metaBytes);
    const trailer = encodeTrailer(
      { mapOffset, mapLength: metaOffset - mapOffset, metaOffset, metaLength: metaBytes.length },
      [...this.mapFrames, metaBytes],
    );
    await this.append(trailer);
    await this.flush();
    this.output = Buffer.alloc(0);
    await this.writer.commit();
    return this.position;
  }

  async abort(): Promise<void> {
    await this.writer.abort();
  }
}

export { HEADER_BYTES };
