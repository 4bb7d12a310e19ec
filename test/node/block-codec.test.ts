import { randomFillSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { BlockCodec, CODEC_RAW, CODEC_ZSTD, zstdBound } from '../../src/main/engine/block-codec.js';

const BS = 16384;

const random = (): Buffer => randomFillSync(Buffer.alloc(BS));
const text = (seed: number): Buffer =>
  Buffer.from(`line ${seed} of a very compressible block\n`.repeat(BS).slice(0, BS));

function roundTrip(codec: BlockCodec, block: Buffer): number {
  const into = Buffer.alloc(zstdBound(block.length));
  const r = codec.compressInto(block, into);
  const back = Buffer.alloc(block.length);
  const stored = r.codec === CODEC_RAW ? block : into.subarray(0, r.length);
  expect(codec.decodeInto(r.codec, stored, back)).toBe(true);
  expect(back.equals(block)).toBe(true);
  return r.codec;
}

describe('block codec: incompressible runs', () => {
  it('stores random blocks raw and still compresses a compressible block after them', () => {
    const codec = new BlockCodec(BS);
    expect(roundTrip(codec, random())).toBe(CODEC_RAW);
    expect(roundTrip(codec, random())).toBe(CODEC_RAW);
    expect(roundTrip(codec, text(1))).toBe(CODEC_ZSTD);
    expect(roundTrip(codec, text(2))).toBe(CODEC_ZSTD);
    expect(roundTrip(codec, random())).toBe(CODEC_RAW);
    // compress() takes the same decision as compressInto().
    expect(codec.compress(random()).codec).toBe(CODEC_RAW);
    const c = codec.compress(text(3));
    expect(c.codec).toBe(CODEC_ZSTD);
    expect(c.bytes.length).toBeLessThan(BS / 10);
  });

  it('after a raw block, still compresses blocks whose bytes are skewed but never repeat', () => {
    // No long matches: only Huffman coding of the literals saves anything on these.
    const base64 = Buffer.from(random().toString('base64').slice(0, BS));
    const halfZero = random();
    for (let i = 0; i < BS; i += 2) halfZero[i] = 0;
    for (const block of [base64, halfZero]) {
      const codec = new BlockCodec(BS);
      expect(roundTrip(codec, random())).toBe(CODEC_RAW);
      expect(roundTrip(codec, block)).toBe(CODEC_ZSTD);
    }
  });

  it('stores raw a block whose sampled middle is random, after a raw block', () => {
    const block = random();
    text(4).copy(block, 0, 0, 4096);
    // Alone, level 3 finds the compressible first quarter...
    expect(new BlockCodec(BS).compress(block).codec).toBe(CODEC_ZSTD);
    // ...but after a raw block the trial samples the random middle: the documented cost.
    const codec = new BlockCodec(BS);
    roundTrip(codec, random());
    expect(roundTrip(codec, block)).toBe(CODEC_RAW);
  });
});
