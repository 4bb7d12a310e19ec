import type { FileHandle } from 'node:fs/promises';
import { BlockHasher } from './block-hasher.js';
import { HASH_BYTES } from './block-hash.js';
import { computeStateHash, type StateMap } from './state-map.js';

/** Read-back chunk: fewer, larger hand-overs to the hashing thread. */
const READ_BACK = 16 << 20;

/**
 * The proof of a restore: the target is read back through its file handle, range by range as
 * the writes of each range complete, and every block hashed on the block worker. Reading a range
 * back while later ranges are still being decoded and written keeps the disk writing instead of
 * waiting for a read-back pass at the end; what is read is what the target holds (the same page
 * cache a read after the final sync would see), and success is reported only once that sync
 * succeeded too.
 */
export class RestoreReadBack {
  private readonly hashes: Buffer;
  private readonly hasher: BlockHasher;
  private readonly perChunk: number;
  private chain: Promise<void> = Promise.resolve();

  constructor(
    private readonly handle: FileHandle,
    private readonly map: StateMap,
  ) {
    this.hashes = Buffer.allocUnsafe(map.blockCount * HASH_BYTES);
    this.perChunk = Math.max(1, Math.floor(READ_BACK / map.blockSize));
    this.hasher = new BlockHasher(map.blockSize, this.perChunk);
  }

  /**
   * Reads back blocks [first, first + count) once their writes are done; ranges are taken in the
   * order given. The returned promise settles when the range is read (not yet hashed), so a caller
   * awaiting it never runs more than the hasher's two slots ahead.
   */
  range(first: number, count: number): Promise<void> {
    const read = this.chain.then(async () => {
      for (let at = first; at < first + count; at += this.perChunk)
        await this.chunk(at, Math.min(this.perChunk, first + count - at));
    });
    this.chain = read;
    // Awaited by `finish`; this only keeps Node from calling it unhandled meanwhile.
    read.catch(() => undefined);
    return read;
  }

  private hashing: Promise<void> = Promise.resolve();

  private async chunk(first: number, count: number): Promise<void> {
    const { map } = this;
    const batch = await this.hasher.batch(count, map.blockLength(first + count - 1));
    try {
      await readFully(this.handle, batch.input, first * map.blockSize);
    } catch (err) {
      batch.release();
      throw err;
    }
    const done = batch.run();
    const previous = this.hashing;
    this.hashing = (async () => {
      try {
        await previous;
        await done;
        batch.hashes.copy(this.hashes, first * HASH_BYTES);
      } finally {
        batch.release();
      }
    })();
    this.hashing.catch(() => undefined);
  }

  /** Waits for every range given; the state hash of what was read, and each block's hash. */
  async finish(): Promise<{ stateHash: string; blockHashes: Buffer }> {
    try {
      await this.chain;
      await this.hashing;
    } finally {
      await this.close();
    }
    return {
      stateHash: computeStateHash(this.map.primarySize, this.map.blockSize, this.hashes),
      blockHashes: this.hashes,
    };
  }

  /** Stops the hashing thread once nothing uses its memory any more (also after a failure). */
  async close(): Promise<void> {
    await this.chain.catch(() => undefined);
    await this.hashing.catch(() => undefined);
    await this.hasher.close();
  }
}

/** Fills `into` from `position`; past the end of the target it reads as zeros, like a hole. */
async function readFully(handle: FileHandle, into: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < into.length) {
    const { bytesRead } = await handle.read(into, done, into.length - done, position + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  into.fill(0, done, into.length);
}
