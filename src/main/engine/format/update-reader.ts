import { TidemarkError } from '../../../shared/errors.js';
import { BlockCodec } from '../block-codec.js';
import { hashBlock } from '../block-hash.js';
import type { ObjectStore } from '../storage/object-store.js';
import {
  checkFileHeader,
  decodeFrameIndex,
  decodeTrailer,
  HEADER_BYTES,
  MAP_ENTRY_BYTES,
  MAP_FRAME_ENTRIES,
  parseMeta,
  readRecordHeader,
  RECORD_HEADER_BYTES,
  RECORD_MAP_FRAME,
  sectionChecksum,
  TRAILER_BYTES,
  trailerFields,
  type Trailer,
  type UpdateMeta,
} from './update-format.js';
import { readU64 } from '../binary.js';

const FRAME_BYTES = MAP_FRAME_ENTRIES * MAP_ENTRY_BYTES;

/**
 * An opened, checksum-checked update object: its meta, its block map, and the range of its
 * records. Opening reads only the header, the frame index, the meta and the trailer; the map's
 * frames are read (and each checked against the index) when they are visited.
 */
export class UpdateReader {
  private constructor(
    readonly store: ObjectStore,
    readonly name: string,
    readonly size: number,
    readonly trailer: Trailer,
    readonly meta: UpdateMeta,
    private readonly frames: Array<{ offset: number; checksum: Buffer }>,
  ) {}

  static async open(store: ObjectStore, name: string): Promise<UpdateReader> {
    const size = await store.size(name);
    if (size < HEADER_BYTES + TRAILER_BYTES) {
      throw new TidemarkError('archive.corrupt', `${name} is incomplete or damaged (too short)`);
    }
    checkFileHeader(await store.read(name, 0, HEADER_BYTES), name);
    const trailerBytes = await store.read(name, size - TRAILER_BYTES, TRAILER_BYTES);
    const trailer = decodeTrailer(trailerBytes, size, name);
    const sections = await store.read(
      name,
      trailer.mapOffset,
      trailer.mapLength + trailer.metaLength,
    );
    const checksum = sectionChecksum([sections], trailerFields(trailerBytes));
    if (!checksum.equals(trailer.checksum)) {
      throw new TidemarkError(
        'archive.corrupt',
        `${name}: block map index or metadata damaged (checksum mismatch)`,
      );
    }
    const meta = parseMeta(sections.subarray(trailer.mapLength), name);
    const frames = decodeFrameIndex(Buffer.from(sections.subarray(0, trailer.mapLength)), name);
    return new UpdateReader(store, name, size, trailer, meta, frames);
  }

  /** Start and end (exclusive) of the records. */
  get recordsRange(): [number, number] {
    return [HEADER_BYTES, this.trailer.mapOffset];
  }

  /**
   * Calls `visit` for every block map entry. `hash` is a view valid only during the call.
   * A frame that does not match its checksum in the index throws `archive.corrupt`.
   */
  async forEachMapEntry(visit: (blockIndex: number, hash: Buffer) => void): Promise<void> {
    const codec = new BlockCodec(FRAME_BYTES);
    const raw = Buffer.allocUnsafe(FRAME_BYTES);
    const header = Buffer.allocUnsafe(RECORD_HEADER_BYTES);
    for (const frame of this.frames) {
      if (
        frame.offset < HEADER_BYTES ||
        frame.offset + RECORD_HEADER_BYTES > this.trailer.mapOffset
      )
        this.damaged();
      const h = readRecordHeader(
        await this.store.read(this.name, frame.offset, RECORD_HEADER_BYTES, header),
      );
      if (
        h.kind !== RECORD_MAP_FRAME ||
        h.rawLength > FRAME_BYTES ||
        h.rawLength % MAP_ENTRY_BYTES !== 0
      )
        this.damaged();
      const end = frame.offset + RECORD_HEADER_BYTES + h.storedLength;
      if (end > this.trailer.mapOffset) this.damaged();
      const stored = await this.store.read(
        this.name,
        frame.offset + RECORD_HEADER_BYTES,
        h.storedLength,
      );
      if (!hashBlock(stored).equals(frame.checksum)) this.damaged();
      const entries = codec.decompress(h.codec, stored, raw, h.rawLength, this.name);
      for (let e = 0; e < entries.length; e += MAP_ENTRY_BYTES) {
        visit(readU64(entries, e), entries.subarray(e + 8, e + MAP_ENTRY_BYTES));
      }
    }
  }

  /**
   * Calls `visit` with the raw content of every indexed frame of `kind`, in index order (frames
   * of other kinds are skipped). Each frame is checked against its checksum in the index.
   */
  async forEachFrame(kind: number, visit: (raw: Buffer) => void | Promise<void>): Promise<void> {
    const codec = new BlockCodec(1 << 20);
    let raw = Buffer.allocUnsafe(1 << 20);
    for (const frame of this.frames) {
      if (
        frame.offset < HEADER_BYTES ||
        frame.offset + RECORD_HEADER_BYTES > this.trailer.mapOffset
      )
        this.damaged();
      const h = readRecordHeader(
        await this.store.read(this.name, frame.offset, RECORD_HEADER_BYTES),
      );
      if (h.kind !== kind) continue;
      const end = frame.offset + RECORD_HEADER_BYTES + h.storedLength;
      if (end > this.trailer.mapOffset) this.damaged();
      const stored = await this.store.read(
        this.name,
        frame.offset + RECORD_HEADER_BYTES,
        h.storedLength,
      );
      if (!hashBlock(stored).equals(frame.checksum)) this.damaged();
      if (raw.length < h.rawLength) raw = Buffer.allocUnsafe(h.rawLength);
      await visit(codec.decompress(h.codec, stored, raw, h.rawLength, this.name));
    }
  }

  private damaged(): never {
    throw new TidemarkError('archive.corrupt', `${this.name}: block map damaged`);
  }
}
