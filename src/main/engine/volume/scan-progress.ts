import * as fs from 'node:fs';
import type { Excludes } from './excludes.js';
import { joinPath } from './volume-tree.js';

const YIELD_MS = 20;

/**
 * The scan's file system calls are synchronous: without a turn of the event loop now and then, a
 * cancel message, or the watcher's events that prove a live round (TreeWatcher), would wait for
 * the whole round. `breathe` lets the loop run every YIELD_MS.
 */
export class Breather {
  private last = performance.now();

  breathe(): Promise<void> | undefined {
    const now = performance.now();
    if (now - this.last < YIELD_MS) return undefined;
    this.last = now;
    return new Promise((resolve) => setImmediate(resolve));
  }
}

/** Bytes of files so far, of all; throwing from it (a cancel) stops the point. */
export type ProgressSink = (done: number, total: number) => void;

/**
 * A point's progress in bytes of files looked at: a file whose metadata are unchanged counts its
 * size at once, a file read counts as it is read. The total is the last state's size (or a
 * pre-count for a baseline); the tree may have grown since, so the total never falls below what
 * is done. Only the first round of a point counts: later rounds re-read a few files.
 */
export class ScanProgress {
  private done = 0;
  private total: number;
  constructor(
    total: number,
    private readonly sink: ProgressSink,
  ) {
    this.total = total;
    sink(0, total);
  }

  /** A cancel that came in during the scan's last breath (Breather) throws from here. */
  add(bytes: number): void {
    this.done += bytes;
    if (this.done > this.total) this.total = this.done;
    this.sink(this.done, this.total);
  }

  /** The first round is over: the bar shows it whole while the point settles and commits. */
  finish(): void {
    this.total = Math.max(this.done, 1);
    this.sink(this.total, this.total);
  }
}

/**
 * Bytes of the files under `root` (excludes left out), by metadata only: the total of a baseline,
 * which has no last state to take it from. Unreadable folders count as empty.
 */
export function countTreeBytes(root: Buffer, excludes: Excludes): number {
  let bytes = 0;
  const stack: string[] = [''];
  while (stack.length > 0) {
    const dir = stack.pop() as string;
    let names: fs.Dirent<Buffer>[];
    try {
      const abs = dir === '' ? root : Buffer.concat([root, Buffer.from(`/${dir}`, 'latin1')]);
      names = fs.readdirSync(abs, { encoding: 'buffer', withFileTypes: true });
    } catch {
      continue;
    }
    for (const d of names) {
      const rel = joinPath(dir, d.name.toString('latin1'));
      if (excludes.excludes(rel)) continue;
      if (d.isDirectory()) stack.push(rel);
      else if (d.isFile()) {
        try {
          bytes += fs.lstatSync(Buffer.concat([root, Buffer.from(`/${rel}`, 'latin1')])).size;
        } catch {
          // Gone since the listing: the scan will not count it either.
        }
      }
    }
  }
  return bytes;
}
