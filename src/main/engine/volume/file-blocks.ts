import * as fs from 'node:fs';
import { HASH_BYTES, hashBlock } from '../block-hash.js';
import type { BlockSink } from './block-sink.js';
import { fileContentHash } from './volume-entry.js';

const READ_BYTES = 8 << 20;

export interface FileContent {
  size: number;
  blocks: Buffer;
  contentHash: Buffer;
  /** fstat before reading: the metadata the content belongs to. */
  stat: fs.BigIntStats;
  /** Size or mtime moved while the file was read: it must be read again. */
  changedWhileRead: boolean;
}

/**
 * Reads one file and cuts it into fixed-size blocks, hashing each and handing it to the sink.
 * A file that grows while it is read is read up to the size it had when opened; the caller sees
 * `changedWhileRead` and reads it again in the next round of the point.
 */
export class FileBlockReader {
  private readonly buffer = Buffer.allocUnsafe(READ_BYTES);
  /** Told the bytes of every read as it is made (a point's progress); may throw to cancel. */
  onBytes: ((n: number) => Promise<void> | undefined) | null = null;

  constructor(
    private readonly blockSize: number,
    private readonly sink: BlockSink | null,
  ) {}

  /** Throws the system error (EACCES, ENOENT, ELOOP for a file replaced by a link...). */
  async read(abs: Buffer): Promise<FileContent | 'not-a-file'> {
    const fd = fs.openSync(
      abs,
      fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK,
    );
    try {
      const stat = fs.fstatSync(fd, { bigint: true });
      if (!stat.isFile()) return 'not-a-file';
      const want = Number(stat.size);
      const perRead = Math.floor(READ_BYTES / this.blockSize) * this.blockSize;
      let blocks: Buffer = Buffer.allocUnsafe(Math.ceil(want / this.blockSize) * HASH_BYTES);
      let count = 0;
      let size = 0;
      while (size < want) {
        const n = readFully(fd, this.buffer, Math.min(perRead, want - size), size);
        if (n === 0) break;
        const hashes: Buffer[] = [];
        for (let at = 0; at < n; at += this.blockSize) {
          const hash = hashBlock(this.buffer.subarray(at, Math.min(n, at + this.blockSize)));
          if ((count + 1) * HASH_BYTES > blocks.length) blocks = grow(blocks);
          hash.copy(blocks, count * HASH_BYTES);
          count++;
          hashes.push(hash);
        }
        if (this.sink) {
          // A big file changed in a few places: most of its blocks are known, and are left alone.
          const unknown = hashes.length >= 16 ? this.sink.unknownOf(hashes) : null;
          for (let i = 0; i < hashes.length; i++) {
            const hash = hashes[i] as Buffer;
            if (unknown && !unknown.has(hash)) continue;
            const at = i * this.blockSize;
            await this.sink.add(hash, this.buffer.subarray(at, Math.min(n, at + this.blockSize)));
          }
        }
        size += n;
        await this.onBytes?.(n);
      }
      const after = fs.fstatSync(fd, { bigint: true });
      const blockList = blocks.subarray(0, count * HASH_BYTES);
      return {
        size,
        blocks: blockList,
        contentHash: fileContentHash(size, this.blockSize, blockList),
        stat,
        changedWhileRead:
          size !== want || after.size !== stat.size || after.mtimeNs !== stat.mtimeNs,
      };
    } finally {
      fs.closeSync(fd);
    }
  }
}

function readFully(fd: number, into: Buffer, length: number, position: number): number {
  let done = 0;
  while (done < length) {
    const n = fs.readSync(fd, into, done, length - done, position + done);
    if (n === 0) break;
    done += n;
  }
  return done;
}

function grow(b: Buffer): Buffer {
  const bigger = Buffer.allocUnsafe(Math.max(HASH_BYTES * 16, b.length * 2));
  b.copy(bigger);
  return bigger;
}
