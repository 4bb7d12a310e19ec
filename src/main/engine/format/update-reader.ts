import { TidemarkError } from '../../../shared/errors.js';
import { BlockCodec } from '../block-codec.js';
import type { ObjectStore } from '../storage/object-store.js';
import {
  checkFileHeader,
  decodeTrailer,
  HEADER_BYTES,
  MAP_ENTRY_BYTES,
  MAP_FRAME_ENTRIES,
  MAP_FRAME_HEADER_BYTES,
  parseMeta,
  readMapIndex,
  sectionChecksum,
  TRAILER_BYTES,
  trailerFields,
  type Trailer,
  type UpdateMeta,
} from './update-format.js';

/**
 * An opened, checksum-checked update object: its meta, its block map, and random access to its
 * stored blocks. Opening reads only the header, the map, the meta and the trailer.
 */
export class UpdateReader {
  private constructor(
    readonly store: ObjectStore,
    readonly name: string,
    readonly size: number,
    readonly trailer: Trailer,
    readonly meta: UpdateMeta,
    private readonly map: Buffer,
  ) {}

  static async open(store: ObjectStore, name: string): Promise<UpdateReader> {
    const size = await store.size(name);
    if (size < HEADER_BYTES + TRAILER_BYTES) {
      throw new TidemarkError('archive.corrupt', `${name} is incomplete or damaged (too short)`);
    }
    checkFileHeader(await store.read(name, 0, HEADER_BYTES), name);
    const trailerBytes = await store.read(name, size - TRAILER_BYTES, TRAILER_BYTES);
    const trailer = decodeTrailer(trailerBytes, size, name);
    const sections = await store.read(name, trailer.mapOffset, trailer.mapLength + trailer.metaLength);
    const checksum = sectionChecksum([sections], trailerFields(trailerBytes));
    if (!checksum.equals(trailer.checksum)) {
      throw new TidemarkError('archive.corrupt', `${name}: block map or metadata damaged (checksum mismatch)`);
    }
    const meta = parseMeta(sections.subarray(trailer.mapLength), name);
    return new UpdateReader(store, name, size, trailer, meta, sections.subarray(0, trailer.mapLength));
  }

  /** Start and end (exclusive) of the stored-block records. */
  get recordsRange(): [number, number] {
    return [HEADER_BYTES, this.trailer.mapOffset];
  }

  /**
   * Calls `visit` for every map entry, in block order of each frame. `hash` is a view that is
   * only valid during the call.
   */
  forEachMapEntry(visit: (blockIndex: number, hash: Buffer) => void): void {
    const codec = new BlockCodec(MAP_FRAME_ENTRIES * MAP_ENTRY_BYTES);
    const frame = Buffer.allocUnsafe(MAP_FRAME_ENTRIES * MAP_ENTRY_BYTES);
    let at = 0;
    while (at < this.map.length) {
      if (at + MAP_FRAME_HEADER_BYTES + 1 > this.map.length) this.damaged();
      const length = this.map.readUInt32LE(at);
      const entries = this.map.readUInt32LE(at + 4);
      const end = at + MAP_FRAME_HEADER_BYTES + length;
      if (length < 1 || entries > MAP_FRAME_ENTRIES || end > this.map.length) this.damaged();
      const codecId = this.map.readUInt8(at + MAP_FRAME_HEADER_BYTES);
      const payload = this.map.subarray(at + MAP_FRAME_HEADER_BYTES + 1, end);
      const raw = codec.decompress(codecId, payload, frame, entries * MAP_ENTRY_BYTES, this.name);
      for (let i = 0; i < entries; i++) {
        const e = i * MAP_ENTRY_BYTES;
        visit(readMapIndex(raw, e), raw.subarray(e + 8, e + MAP_ENTRY_BYTES));
      }
      at = end;
    }
  }

  private damaged(): never {
    throw new TidemarkError('archive.corrupt', `${this.name}: block map damaged`);
  }
}
