import { hashBlock } from '../block-hash.js';
import { BlockCodec } from '../block-codec.js';
import type { ObjectStore, ObjectWriter } from '../storage/object-store.js';
import {
  encodeFileHeader,
  encodeFrameIndex,
  encodeTrailer,
  MAP_ENTRY_BYTES,
  MAP_FRAME_ENTRIES,
  RECORD_BLOCK,
  RECORD_HEADER_BYTES,
  RECORD_MAP_FRAME,
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
 * Streams one update object: stored blocks and block-map frames as they come, then the frame
 * index, the meta JSON and the trailer. Output is gathered in a 4 MiB buffer so the store sees
 * few, large writes, and memory stays flat whatever the size of the primary. Nothing is visible
 * in the archive before `finish` has committed the object.
 */
export class UpdateWriter {
  private output = Buffer.allocUnsafe(OUTPUT_BUFFER);
  private outputUsed = 0;
  private position = 0;
  private readonly frame = Buffer.allocUnsafe(MAP_FRAME_ENTRIES * MAP_ENTRY_BYTES);
  private frameEntries = 0;
  private readonly frames: Array<{ offset: number; checksum: Buffer }> = [];
  private readonly codec: BlockCodec;
  storedBlocks = 0;

  private constructor(
    private readonly writer: ObjectWriter,
    blockSize: number,
  ) {
    this.codec = new BlockCodec(Math.max(blockSize, MAP_FRAME_ENTRIES * MAP_ENTRY_BYTES));
  }

  static async create(store: ObjectStore, name: string, blockSize: number): Promise<UpdateWriter> {
    const writer = await store.create(name);
    const w = new UpdateWriter(writer, blockSize);
    await w.append(encodeFileHeader());
    return w;
  }

  /** Stores one block (compressed when that helps) and returns where it lives. */
  async addBlock(hash: Buffer, data: Buffer): Promise<StoredBlock> {
    const { codec, bytes } = this.codec.compress(data);
    const offset = await this.addRecord(hash, data.length, codec, RECORD_BLOCK, bytes);
    this.storedBlocks++;
    return { offset, storedLength: bytes.length, rawLength: data.length, codec };
  }

  /**
   * Copies a stored block as it is stored elsewhere (a collapse carrying a block out of an update
   * it replaces, or one compressed on the block worker): its content hash still covers it.
   */
  async addStoredBlock(
    hash: Buffer,
    rawLength: number,
    codec: number,
    stored: Buffer,
  ): Promise<StoredBlock> {
    const offset = await this.addRecord(hash, rawLength, codec, RECORD_BLOCK, stored);
    this.storedBlocks++;
    return { offset, storedLength: stored.length, rawLength, codec };
  }

  /** Records that block `blockIndex` of the new state has content `hash`. */
  async addMapEntry(blockIndex: number, hash: Uint8Array): Promise<void> {
    writeMapEntry(this.frame, this.frameEntries * MAP_ENTRY_BYTES, blockIndex, hash);
    this.frameEntries++;
    if (this.frameEntries === MAP_FRAME_ENTRIES) await this.closeFrame();
  }

  private async closeFrame(): Promise<void> {
    if (this.frameEntries === 0) return;
    await this.addFrame(
      RECORD_MAP_FRAME,
      this.frame.subarray(0, this.frameEntries * MAP_ENTRY_BYTES),
    );
    this.frameEntries = 0;
  }

  /**
   * Stores one frame of another kind (a volume's file entries): checksummed and listed in the
   * frame index like a block-map frame, so the trailer's checksum covers it too.
   */
  async addFrame(kind: number, raw: Buffer): Promise<void> {
    const { codec, bytes } = this.codec.compress(raw);
    const checksum = hashBlock(bytes);
    const offset = await this.addRecord(checksum, raw.length, codec, kind, bytes);
    this.frames.push({ offset, checksum });
  }

  private async addRecord(
    hash: Buffer,
    rawLength: number,
    codec: number,
    kind: number,
    bytes: Buffer,
  ): Promise<number> {
    if (this.outputUsed + RECORD_HEADER_BYTES > this.output.length) await this.flush();
    const offset = this.position;
    writeRecordHeader(this.output.subarray(this.outputUsed), {
      hash,
      rawLength,
      storedLength: bytes.length,
      codec,
      kind,
    });
    this.outputUsed += RECORD_HEADER_BYTES;
    this.position += RECORD_HEADER_BYTES;
    await this.append(bytes);
    return offset;
  }

  private async append(bytes: Uint8Array): Promise<void> {
    if (bytes.length > this.output.length - this.outputUsed) {
      await this.flush();
      // A long update: the disk writes it back while the rest is produced, so that `finish`'s
      // fsync waits for the last buffers only, not for the whole update (README, "Benchmark").
      this.writer.syncBehind?.();
    }
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

  /**
   * Hands what is buffered to the store and lets it make those bytes durable ahead of `finish`
   * (a volume point does this while it waits for late watcher events, so the commit's fsync has
   * only the entries left to write). The sync is under way when this resolves: the caller may
   * work meanwhile, then await `synced`.
   */
  async writeAhead(): Promise<{ synced: Promise<void> }> {
    await this.flush();
    // Wrapped: an async function would wait for a promise it returns.
    return { synced: this.writer.writeAhead?.() ?? Promise.resolve() };
  }

  /** Writes the frame index, meta and trailer, then makes the update durable and visible. */
  async finish(meta: UpdateMeta): Promise<number> {
    await this.closeFrame();
    const index = encodeFrameIndex(this.frames);
    const mapOffset = this.position;
    await this.append(index);
    const metaBytes = Buffer.from(JSON.stringify(meta), 'utf8');
    const metaOffset = this.position;
    await this.append(metaBytes);
    const trailer = encodeTrailer(
      { mapOffset, mapLength: metaOffset - mapOffset, metaOffset, metaLength: metaBytes.length },
      [index, metaBytes],
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
