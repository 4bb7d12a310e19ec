import * as fs from 'node:fs';
import { emptySuspects, type Suspects } from './tree-scanner.js';
import { parentOf } from './volume-tree.js';

/**
 * The journal of a volume: tree paths the watcher saw change during the current interval. It is
 * an append-only log (u32 length + path bytes per record), so a crash or restart between two
 * points loses nothing; a path already noted in the interval is not logged again. At a point
 * the interval's paths are rotated out and dropped only once the update is committed.
 */
export class PathJournal {
  private fd: number;
  private readonly noted = new Set<string>();
  private readonly head = Buffer.alloc(4);

  private constructor(readonly file: string) {
    this.fd = fs.openSync(file, 'a+');
  }

  static open(file: string): PathJournal {
    const journal = new PathJournal(file);
    const ending = `${file}.ending`;
    if (fs.existsSync(ending)) {
      // A point was interrupted after rotating: its paths belong to the next update again.
      fs.writeSync(journal.fd, fs.readFileSync(ending));
      fs.rmSync(ending, { force: true });
    }
    for (const p of readLog(fs.readFileSync(file))) journal.noted.add(p);
    return journal;
  }

  get size(): number {
    return this.noted.size;
  }

  note(rel: string): void {
    if (this.noted.has(rel)) return;
    this.noted.add(rel);
    const bytes = Buffer.from(rel, 'latin1');
    this.head.writeUInt32LE(bytes.length, 0);
    fs.writeSync(this.fd, Buffer.concat([this.head, bytes]));
  }

  /** The interval ending now, as suspects: each path, and its folder for names that came or went. */
  rotate(): { suspects: Suspects; settle(committed: boolean): void } {
    const paths = [...this.noted];
    const ending = `${this.file}.ending`;
    fs.fsyncSync(this.fd);
    fs.closeSync(this.fd);
    fs.renameSync(this.file, ending);
    this.fd = fs.openSync(this.file, 'a+');
    this.noted.clear();
    return {
      suspects: suspectsOf(paths),
      settle: (committed) => {
        if (!committed) for (const p of paths) this.note(p);
        fs.rmSync(ending, { force: true });
      },
    };
  }

  close(): void {
    fs.closeSync(this.fd);
  }
}

export function suspectsOf(paths: Iterable<string>): Suspects {
  const s = emptySuspects();
  for (const p of paths) {
    s.paths.add(p);
    s.dirs.add(parentOf(p));
  }
  return s;
}

function* readLog(log: Buffer): Generator<string> {
  let at = 0;
  while (at + 4 <= log.length) {
    const n = log.readUInt32LE(at);
    if (at + 4 + n > log.length) return; // a record cut by a crash: the rescan covers it
    yield log.toString('latin1', at + 4, at + 4 + n);
    at += 4 + n;
  }
}
