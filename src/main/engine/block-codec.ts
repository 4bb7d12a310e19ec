import zstd from 'zstd-napi/binding.js';
import { TidemarkError } from '../../shared/errors.js';

export const CODEC_RAW = 0;
export const CODEC_ZSTD = 1;

/** The most bytes zstd may need to compress `length` bytes. */
export function zstdBound(length: number): number {
  return zstd.compressBound(length);
}

/**
 * zstd with one reusable context and scratch buffer per codec: compressing or decompressing a
 * block allocates nothing. A result is a view into the scratch buffer, valid until the next call.
 */
export class BlockCodec {
  private readonly cctx = new zstd.CCtx();
  private readonly dctx = new zstd.DCtx();
  private scratch: Buffer;

  constructor(
    maxBlock: number,
    readonly level = 3,
  ) {
    this.scratch = Buffer.allocUnsafe(zstd.compressBound(maxBlock));
    this.cctx.setParameter(zstd.CParameter.compressionLevel, level);
  }

  /** Largest stored form of a block of `length` bytes. */
  bound(length: number): number {
    return Math.max(length, zstd.compressBound(length));
  }

  /** Returns the stored form of `data`: zstd if that is smaller, else the block itself. */
  compress(data: Buffer): { codec: number; bytes: Buffer } {
    if (this.scratch.length < zstd.compressBound(data.length))
      this.scratch = Buffer.allocUnsafe(zstd.compressBound(data.length));
    const length = this.cctx.compress2(this.scratch, data);
    if (length >= data.length) return { codec: CODEC_RAW, bytes: data };
    return { codec: CODEC_ZSTD, bytes: this.scratch.subarray(0, length) };
  }

  /**
   * Compresses `data` into `into` (at least `zstdBound(data.length)` bytes). A block that does
   * not shrink is stored raw: its codec says so and `into` is left untouched.
   */
  compressInto(data: Buffer, into: Buffer): { codec: number; length: number } {
    const length = this.cctx.compress2(into, data);
    if (length >= data.length) return { codec: CODEC_RAW, length: data.length };
    return { codec: CODEC_ZSTD, length };
  }

  /** Decodes `stored` into exactly `into.length` bytes; false when the block is damaged. */
  decodeInto(codec: number, stored: Buffer, into: Buffer): boolean {
    if (codec === CODEC_RAW) {
      if (stored.length !== into.length) return false;
      stored.copy(into);
      return true;
    }
    if (codec !== CODEC_ZSTD) return false;
    try {
      return this.dctx.decompress(into, stored) === into.length;
    } catch {
      return false;
    }
  }

  /** Decodes `stored` into `into` (exactly `rawLength` bytes) or throws `archive.corrupt`. */
  decompress(
    codec: number,
    stored: Buffer,
    into: Buffer,
    rawLength: number,
    where: string,
  ): Buffer {
    const out = into.subarray(0, rawLength);
    if (codec === CODEC_RAW) {
      if (stored.length !== rawLength)
        throw new TidemarkError('archive.corrupt', `${where}: bad raw block length`);
      stored.copy(out);
      return out;
    }
    if (codec !== CODEC_ZSTD)
      throw new TidemarkError('archive.corrupt', `${where}: unknown block codec ${codec}`);
    let length: number;
    try {
      length = this.dctx.decompress(out, stored);
    } catch (err) {
      throw new TidemarkError(
        'archive.corrupt',
        `${where}: damaged compressed block (${(err as Error).message})`,
      );
    }
    if (length !== rawLength)
      throw new TidemarkError('archive.corrupt', `${where}: block decompressed to a wrong length`);
    return out;
  }
}
