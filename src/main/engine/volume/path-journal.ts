import * as fs from 'node:fs';
import { archiveIoError } from '../storage/io-errors.js';
import { emptySuspects, type Suspects } from './tree-scanner.js';
import { parentOf } from './volume-tree.js';

/** Set in a record's length: the record names a folder whose list of names must be read again. */
const FOLDER_FLAG = 0x80000000;

/**
 * The journal of a volume: tree paths the watcher saw change during the current interval, and
 * folders to list again (where the watcher could not name a path exactly). It is an append-only
 * log (u32 length, top bit set for a folder, then the path bytes), so a crash or restart between
 * two points loses nothing; a path already noted in the interval is not logged again. At a
 * point the interval's paths are rotated out and dropped only once the update is committed.
 */
export class PathJournal {
  private fd: number;
  private readonly noted = new Set<string>();
  private readonly folders = new Set<string>();
  private readonly head = Buffer.alloc(4);

  private constructor(readonly file: string) {
    this.fd = fs.openSync(file, 'a+');
  }

  /** Opens (or makes) the journal; a failing disk is said as such (archive.io, archive.full…). */
  static open(file: string): PathJournal {
    try {
      return PathJournal.load(file);
    } catch (err) {
      throw archiveIoError(err, 'opening the change journal');
    }
  }

  private static load(file: string): PathJournal {
    const journal = new PathJournal(file);
    const ending = `${file}.ending`;
    if (fs.existsSync(ending)) {
      // A point was interrupted after rotating: its paths belong to the next update again.
      fs.writeSync(journal.fd, fs.readFileSync(ending));
      fs.rmSync(ending, { force: true });
    }
    for (const [p, folder] of readLog(fs.readFileSync(file)))
      (folder ? journal.folders : journal.noted).add(p);
    return journal;
  }

  get size(): number {
    return this.noted.size + this.folders.size;
  }

  /** A path whose entry may have changed (or appeared, or gone). */
  note(rel: string): void {
    if (this.noted.has(rel)) return;
    this.noted.add(rel);
    this.append(rel, 0);
  }

  /** A folder whose names must be listed again. */
  noteFolder(rel: string): void {
    if (this.folders.has(rel)) return;
    this.folders.add(rel);
    this.append(rel, FOLDER_FLAG);
  }

  private append(rel: string, flag: number): void {
    const bytes = Buffer.from(rel, 'latin1');
    this.head.writeUInt32LE((bytes.length | flag) >>> 0, 0);
    fs.writeSync(this.fd, Buffer.concat([this.head, bytes]));
  }

  /** The interval ending now, as suspects: each path, and its folder for names that came or went. */
  rotate(): { suspects: Suspects; settle(committed: boolean): void } {
    const paths = [...this.noted];
    const folders = [...this.folders];
    const ending = `${this.file}.ending`;
    try {
      fs.fsyncSync(this.fd);
      fs.closeSync(this.fd);
      fs.renameSync(this.file, ending);
      this.fd = fs.openSync(this.file, 'a+');
    } catch (err) {
      // The journal lives on the secondary: a disk failing here is the backup disk's failure.
      throw archiveIoError(err, 'ending the interval in the change journal');
    }
    this.noted.clear();
    this.folders.clear();
    return {
      suspects: suspectsOf(paths, folders),
      settle: (committed) => {
        if (!committed) {
          for (const p of paths) this.note(p);
          for (const f of folders) this.noteFolder(f);
        }
        try {
          fs.unlinkSync(ending);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        }
      },
    };
  }

  close(): void {
    fs.closeSync(this.fd);
  }
}

/**
 * Paths are looked at themselves (a removed path is found gone, a new folder is walked whole), and
 * so are their folders, whose entries (mtime) a name coming or going moves; an existing folder is
 * listed only when it is named as such (a name the watcher could not give exactly).
 */
export function suspectsOf(paths: Iterable<string>, folders: Iterable<string> = []): Suspects {
  const s: Suspects = { ...emptySuspects(), named: true };
  for (const p of paths) {
    s.paths.add(p);
    const parent = parentOf(p);
    if (parent !== '') s.paths.add(parent);
  }
  for (const f of folders) s.dirs.add(f);
  return s;
}

function* readLog(log: Buffer): Generator<[string, boolean]> {
  let at = 0;
  while (at + 4 <= log.length) {
    const word = log.readUInt32LE(at);
    const n = (word & ~FOLDER_FLAG) >>> 0;
    if (at + 4 + n > log.length) return; // a record cut by a crash: the rescan covers it
    yield [log.toString('latin1', at + 4, at + 4 + n), (word & FOLDER_FLAG) !== 0];
    at += 4 + n;
  }
}
