import * as fs from 'node:fs';
import { TidemarkError } from '../../shared/errors.js';
import { readU64, writeU64 } from './binary.js';

const RECORD_BYTES = 16;

/**
 * What was written during the current interval, by location. A writer that knows its writes (a
 * test, a future driver) calls `write` as they happen; at the point, the snapshot reads only the
 * blocks the journal names, and since it reads them as they are at the point, every location
 * ends up with its latest content however often it was written (consolidation).
 *
 * The journal is persisted as an append-only log of (offset, length) records, so a crash of the
 * process between two points loses nothing; a range whose blocks are all already dirty is not
 * logged again, so a block written 1,000 times costs one record.
 */
export class Journal {
  private dirty: Uint8Array;
  private fd: number;
  private readonly record = Buffer.alloc(RECORD_BYTES);

  private constructor(
    readonly file: string,
    readonly blockSize: number,
    readonly primarySize: number,
  ) {
    this.dirty = new Uint8Array(Math.ceil(primarySize / blockSize));
    this.fd = fs.openSync(file, 'a+');
  }

  /** Opens (or creates) the journal file and replays what an earlier process recorded in it. */
  static open(file: string, blockSize: number, primarySize: number): Journal {
    const journal = new Journal(file, blockSize, primarySize);
    journal.replay();
    return journal;
  }

  private replay(): void {
    const ending = `${this.file}.ending`;
    if (fs.existsSync(ending)) {
      // A point was interrupted after rotating: its blocks belong to the next update again.
      const log = fs.readFileSync(ending);
      fs.writeSync(this.fd, log.subarray(0, log.length - (log.length % RECORD_BYTES)));
      fs.rmSync(ending, { force: true });
    }
    const log = fs.readFileSync(this.file);
    const whole = log.length - (log.length % RECORD_BYTES);
    for (let at = 0; at < whole; at += RECORD_BYTES) {
      this.mark(readU64(log, at), readU64(log, at + 8));
    }
  }

  /** Notes that `data` (or `length` bytes) was written at `offset` of the primary. */
  write(offset: number, data: Uint8Array | number): void {
    const length = typeof data === 'number' ? data : data.length;
    if (offset < 0 || length < 0 || offset + length > this.primarySize) {
      throw new TidemarkError(
        'usage',
        `journal write [${offset}, ${offset + length}) lies outside the primary`,
      );
    }
    if (length === 0 || !this.mark(offset, length)) return;
    writeU64(this.record, offset, 0);
    writeU64(this.record, length, 8);
    fs.writeSync(this.fd, this.record);
  }

  /** Marks the blocks a byte range touches; true if any of them was clean. */
  private mark(offset: number, length: number): boolean {
    const first = Math.floor(offset / this.blockSize);
    const last = Math.min(
      Math.floor((offset + length - 1) / this.blockSize),
      this.dirty.length - 1,
    );
    let fresh = false;
    for (let b = first; b <= last; b++) {
      if (this.dirty[b] === 0) {
        this.dirty[b] = 1;
        fresh = true;
      }
    }
    return fresh;
  }

  get dirtyCount(): number {
    let n = 0;
    for (const d of this.dirty) n += d;
    return n;
  }

  /** Dirty block indexes in ascending order. */
  dirtyBlocks(): number[] {
    const blocks: number[] = [];
    for (let b = 0; b < this.dirty.length; b++) if (this.dirty[b]) blocks.push(b);
    return blocks;
  }

  /**
   * Starts the next interval: returns the blocks of the one ending now and an empty journal
   * for new writes. Call `settle(true)` once the update is committed (the old log goes), or
   * `settle(false)` if the point failed (its blocks are dirty again).
   */
  rotate(): { blocks: number[]; settle(committed: boolean): void } {
    const blocks = this.dirtyBlocks();
    const previous = `${this.file}.ending`;
    fs.closeSync(this.fd);
    fs.renameSync(this.file, previous);
    this.fd = fs.openSync(this.file, 'a+');
    this.dirty = new Uint8Array(this.dirty.length);
    return {
      blocks,
      settle: (committed: boolean) => {
        if (!committed) {
          for (const b of blocks)
            this.write(
              b * this.blockSize,
              Math.min(this.blockSize, this.primarySize - b * this.blockSize),
            );
        }
        fs.rmSync(previous, { force: true });
      },
    };
  }

  close(): void {
    fs.closeSync(this.fd);
  }
}
