import { Blake3Hasher } from '@napi-rs/blake-hash';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { HASH_BYTES } from './block-hash.js';
import { StateMap } from './state-map.js';
import { TEMP_MARK } from './storage/folder-store.js';
import { readU64, writeU64 } from './binary.js';

export const MAP_CACHE_NAME = 'latest.map';
const MAGIC = Buffer.from('TMKMAPC1', 'latin1');
const HEADER_BYTES = 64;
const NO_STATE = 0xffff_ffff;

/**
 * The latest state's full block map (BLAKE3 and scan hashes) in a flat local file beside the
 * catalog, so a snapshot compares against it without replaying every update. It is only a
 * cache: it is trusted only if it names the expected state, reproduces that state's recorded
 * hash, and its scan hashes match their checksum; otherwise the map is rebuilt from the updates.
 * After an interval only the changed entries are rewritten, so its cost follows the change.
 *
 *   0  'TMKMAPC1'  8  u32 blockSize  12  u32 0  16  u64 primarySize  24  u32 stateId (or none)
 *   32 BLAKE3 of the scan-hash section   64 hashes (32 B a block)   then scan hashes (8 B a block)
 */
export class MapCache {
  constructor(private readonly file: string) {}

  static in(dir: string): MapCache {
    return new MapCache(path.join(dir, MAP_CACHE_NAME));
  }

  /** The cached map of `stateId`, or null when the cache holds another state or is damaged. */
  load(
    stateId: number,
    primarySize: number,
    blockSize: number,
    stateHash: string,
  ): StateMap | null {
    let fd: number;
    try {
      fd = fs.openSync(this.file, 'r');
    } catch {
      return null;
    }
    try {
      const header = Buffer.alloc(HEADER_BYTES);
      if (fs.readSync(fd, header, 0, HEADER_BYTES, 0) !== HEADER_BYTES) return null;
      const fits =
        header.subarray(0, 8).equals(MAGIC) &&
        header.readUInt32LE(8) === blockSize &&
        readU64(header, 16) === primarySize &&
        header.readUInt32LE(24) === stateId;
      if (!fits) return null;
      const count = Math.ceil(primarySize / blockSize);
      const hashes = Buffer.allocUnsafe(count * HASH_BYTES);
      if (readFully(fd, hashes, HEADER_BYTES) !== hashes.length) return null;
      const map = new StateMap(primarySize, blockSize, hashes);
      if (map.stateHash() !== stateHash) return null;
      const scan = Buffer.from(
        map.scanHashes.buffer,
        map.scanHashes.byteOffset,
        map.scanHashes.byteLength,
      );
      const complete = readFully(fd, scan, HEADER_BYTES + hashes.length) === scan.length;
      if (!complete || !checksum(scan).equals(header.subarray(32, 32 + HASH_BYTES)))
        map.scanHashes.fill(0n);
      return map;
    } finally {
      fs.closeSync(fd);
    }
  }

  /**
   * Records `map` as the cache of `stateId`. With `touched` (ascending block indexes changed
   * since the cached state `fromStateId`) only those entries are rewritten; otherwise the whole
   * file. Failures are swallowed: a cache that cannot be written is rebuilt next time.
   */
  save(map: StateMap, stateId: number, touched?: { fromStateId: number; blocks: number[] }): void {
    this.mirror?.save(map, stateId, touched);
    try {
      if (touched && this.holds(touched.fromStateId, map)) this.patch(map, stateId, touched.blocks);
      else this.rewrite(map, stateId);
    } catch {
      fs.rmSync(this.file, { force: true });
    }
  }

  /** A second copy every save keeps up to date (the local cache's copy of the latest map). */
  mirror: MapCache | null = null;

  /** Whether the file names `stateId` of this geometry (its content is checked by `load`). */
  names(stateId: number, primarySize: number, blockSize: number): boolean {
    return this.holds(stateId, { primarySize, blockSize } as StateMap);
  }

  remove(): void {
    fs.rmSync(this.file, { force: true });
  }

  private holds(stateId: number, map: StateMap): boolean {
    try {
      const fd = fs.openSync(this.file, 'r');
      const header = Buffer.alloc(HEADER_BYTES);
      const n = fs.readSync(fd, header, 0, HEADER_BYTES, 0);
      fs.closeSync(fd);
      return (
        n === HEADER_BYTES &&
        header.subarray(0, 8).equals(MAGIC) &&
        header.readUInt32LE(24) === stateId &&
        header.readUInt32LE(8) === map.blockSize &&
        readU64(header, 16) === map.primarySize
      );
    } catch {
      return false;
    }
  }

  private rewrite(map: StateMap, stateId: number): void {
    const temp = `${this.file}${TEMP_MARK}${process.pid}`;
    const fd = fs.openSync(temp, 'w');
    try {
      fs.writeSync(fd, this.header(map, stateId), 0, HEADER_BYTES, 0);
      fs.writeSync(fd, map.hashes, 0, map.hashes.length, HEADER_BYTES);
      const scan = map.scanHashBytes();
      fs.writeSync(fd, scan, 0, scan.length, HEADER_BYTES + map.hashes.length);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(temp, this.file);
  }

  private patch(map: StateMap, stateId: number, blocks: number[]): void {
    const fd = fs.openSync(this.file, 'r+');
    try {
      // Mark the file stateless first: a crash halfway leaves a cache nobody trusts.
      const none = Buffer.alloc(4);
      none.writeUInt32LE(NO_STATE, 0);
      fs.writeSync(fd, none, 0, 4, 24);
      const scanStart = HEADER_BYTES + map.hashes.length;
      const scan = map.scanHashBytes();
      for (let i = 0; i < blocks.length;) {
        const first = blocks[i] as number;
        let n = 1;
        while (i + n < blocks.length && blocks[i + n] === first + n) n++;
        fs.writeSync(
          fd,
          map.hashes,
          first * HASH_BYTES,
          n * HASH_BYTES,
          HEADER_BYTES + first * HASH_BYTES,
        );
        i += n;
      }
      // Scan hashes are per group of blocks and small (8 B per 256 KiB): written whole.
      fs.writeSync(fd, scan, 0, scan.length, scanStart);
      fs.writeSync(fd, this.header(map, stateId), 0, HEADER_BYTES, 0);
    } finally {
      fs.closeSync(fd);
    }
  }

  private header(map: StateMap, stateId: number): Buffer {
    const header = Buffer.alloc(HEADER_BYTES);
    MAGIC.copy(header, 0);
    header.writeUInt32LE(map.blockSize, 8);
    writeU64(header, map.primarySize, 16);
    header.writeUInt32LE(stateId, 24);
    checksum(map.scanHashBytes()).copy(header, 32);
    return header;
  }
}

function checksum(data: Buffer): Buffer {
  return new Blake3Hasher().update(data).digestBuffer();
}

function readFully(fd: number, into: Buffer, position: number): number {
  let done = 0;
  while (done < into.length) {
    const n = fs.readSync(fd, into, done, Math.min(into.length - done, 1 << 30), position + done);
    if (n === 0) break;
    done += n;
  }
  return done;
}
