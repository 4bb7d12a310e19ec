import * as fs from 'node:fs';
import { blake3 } from '@napi-rs/blake-hash';
import { HASH_BYTES } from '../block-hash.js';
import type { VolumeTree } from './volume-tree.js';

/**
 * The scan hashes (one xxh3 per block) of a tree's big files, kept beside the journal from one
 * process to the next: without them the first read of a big file after a start BLAKE3-hashes
 * every block, though only a few changed (file-blocks.ts). A local cache, never the truth: a
 * record is taken only for an entry with the same size and content hash (so the same block
 * list), and a file whose checksum fails is ignored whole. Layout: magic, then per file u32
 * path length, path, content hash, u64 size, u32 block count, the xxh3s; then BLAKE3 of all that.
 */
const MAGIC = Buffer.from('TMVSCAN1', 'latin1');

/** Its name in the archive's local folder, beside the journal. */
export const SCAN_HASHES_NAME = 'volume.scan-hashes';

/** Gives the entries of `tree` the scan hashes the cache holds for their current content. */
export function loadScanHashes(file: string, tree: VolumeTree): number {
  let raw: Buffer;
  try {
    raw = fs.readFileSync(file);
  } catch {
    return 0;
  }
  const body = raw.length - HASH_BYTES;
  if (body < MAGIC.length || !raw.subarray(0, MAGIC.length).equals(MAGIC)) return 0;
  if (!blake3(raw.subarray(0, body)).equals(raw.subarray(body))) return 0;
  let at = MAGIC.length;
  let taken = 0;
  while (at + 4 <= body) {
    const pathLength = raw.readUInt32LE(at);
    at += 4;
    const fixed = pathLength + HASH_BYTES + 8 + 4;
    if (at + fixed > body) return taken;
    const path = raw.toString('latin1', at, at + pathLength);
    at += pathLength;
    const contentHash = raw.subarray(at, at + HASH_BYTES);
    at += HASH_BYTES;
    const size = Number(raw.readBigUInt64LE(at));
    const count = raw.readUInt32LE(at + 8);
    at += 12;
    if (at + count * 8 > body) return taken;
    const e = tree.get(path);
    if (
      e?.type === 'file' &&
      e.size === size &&
      e.contentHash?.equals(contentHash) &&
      e.blocks?.length === count * HASH_BYTES
    ) {
      // Copied out: the entry outlives this file's buffer, and the offset need not be aligned.
      const hashes = new BigUint64Array(count);
      Buffer.from(hashes.buffer).set(raw.subarray(at, at + count * 8));
      e.scanHashes = hashes;
      taken++;
    }
    at += count * 8;
  }
  return taken;
}

/** Writes the scan hashes of `tree`'s files (replacing the file whole; a torn write is ignored). */
export function saveScanHashes(file: string, tree: VolumeTree): void {
  const parts: Buffer[] = [MAGIC];
  for (const e of tree.values()) {
    const hashes = e.scanHashes;
    if (e.type !== 'file' || !hashes || !e.contentHash) continue;
    if (hashes.length * HASH_BYTES !== e.blocks?.length) continue;
    const head = Buffer.allocUnsafe(4 + e.path.length + HASH_BYTES + 12);
    let at = head.writeUInt32LE(e.path.length, 0);
    at += head.write(e.path, at, 'latin1');
    at += e.contentHash.copy(head, at);
    at = head.writeBigUInt64LE(BigInt(e.size), at);
    head.writeUInt32LE(hashes.length, at);
    parts.push(head, Buffer.from(hashes.buffer, hashes.byteOffset, hashes.byteLength));
  }
  const body = Buffer.concat(parts);
  const temp = `${file}.new`;
  fs.writeFileSync(temp, Buffer.concat([body, blake3(body)]));
  fs.renameSync(temp, file);
}
