import zstd from 'zstd-napi/binding.js';
import { TidemarkError } from '../../shared/errors.js';

export const CODEC_RAW = 0;
export const CODEC_ZSTD = 1;

/** The most bytes zstd may need to compress `length` bytes. */
export function zstdBound(length: number): number {
  return zstd.compressBound(length);
}

/**
 * The quick trial that decides, after a block that did not shrink, whether the next one is worth
 * the real compression: zstd level 1 on at most 4 KiB from the middle of the block. On
 * incompressible data (encrypted files, media, compressed archives) level 3 costs several times
 * more than the trial only to find that the block must be stored raw. Level 1 still codes
 * literals with Huffman, so base64 text or 16-bit samples are recognised, which zstd's negative
 * (faster) levels, which store literals raw, miss.
 */
const PROBE_LEVEL = 1;
const PROBE_BYTES = 4096;
const PROBE_MIN_BLOCK = 1024;

/**
 * zstd with one reusable context and scratch buffer per codec: compressing or decompressing a
 * block allocates nothing. A result is a view into the scratch buffer, valid until the next call.
 *
 * Incompressible runs are detected cheaply, the way borg's `auto` compression does with lz4: once
 * a block was stored raw, a sample of the next one is tried first, and only a block whose sample
 * saves at least 1/32 is compressed at the real level. Compressible data never pays for the trial
 * (it only follows a raw block). What it may cost: a block whose sampled middle is incompressible
 * but whose other parts are not (a boundary between two files) is stored raw; the next block is
 * judged on its own.
 */
export class BlockCodec {
  private readonly cctx = new zstd.CCtx();
  private readonly dctx = new zstd.DCtx();
  private probe: InstanceType<typeof zstd.CCtx> | null = null;
  private lastRaw = false;
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
    const length = this.compressTo(this.scratch, data);
    if (length >= data.length) return { codec: CODEC_RAW, bytes: data };
    return { codec: CODEC_ZSTD, bytes: this.scratch.subarray(0, length) };
  }

  /**
   * Compresses `data` into `into` (at least `zstdBound(data.length)` bytes). A block that does
   * not shrink is stored raw: its codec says so and what `into` then holds is meaningless.
   */
  compressInto(data: Buffer, into: Buffer): { codec: number; length: number } {
    const length = this.compressTo(into, data);
    if (length >= data.length) return { codec: CODEC_RAW, length: data.length };
    return { codec: CODEC_ZSTD, length };
  }

  /** zstd's length for `data` in `into`, or `data.length` when it is to be stored raw. */
  private compressTo(into: Buffer, data: Buffer): number {
    if (this.lastRaw && data.length >= PROBE_MIN_BLOCK) {
      if (!this.probe) {
        this.probe = new zstd.CCtx();
        this.probe.setParameter(zstd.CParameter.compressionLevel, PROBE_LEVEL);
      }
      const n = Math.min(PROBE_BYTES, data.length >> 2);
      const at = (data.length - n) >> 1;
      if (this.probe.compress2(into, data.subarray(at, at + n)) > n - (n >> 5)) return data.length;
    }
    const length = this.cctx.compress2(into, data);
    this.lastRaw = length >= data.length;
    return length;
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
