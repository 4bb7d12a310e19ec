import * as fs from 'node:fs';
import { isTidemarkError } from '../../../shared/errors.js';
import type { Excludes } from './excludes.js';
import type { FileBlockReader } from './file-blocks.js';
import { Breather, type ScanProgress } from './scan-progress.js';
import { typeOfStats, type VolumeEntry } from './volume-entry.js';
import { joinPath, type VolumeTree } from './volume-tree.js';

const SLASH = Buffer.from('/');
/** Larger than the timestamp granularity of filesystems with sub-second times (a jiffy, 1–10 ms). */
const TIMESTAMP_SLACK_NS = 50_000_000n;

/** What to look at in one round of a point. */
export interface Suspects {
  /** Compare the whole tree with the last state (a rescan). */
  all: boolean;
  /** Folders whose children are listed and compared (not recursively). */
  dirs: Set<string>;
  /** Paths whose content is read again even if their metadata look unchanged. */
  paths: Set<string>;
  /**
   * A watcher named every name that came or went (each is among `paths`): a folder whose own
   * metadata moved is then not listed again, only a new folder is walked (names made in it
   * before the watcher watched it would be missed). Listing every folder a point touched costs
   * a stat of each of its children, most of the time of a point in folders of many files.
   */
  named?: boolean;
}

export function emptySuspects(): Suspects {
  return { all: false, dirs: new Set(), paths: new Set() };
}

export interface ScanReport {
  /** Entries added, changed or removed in this round. */
  changed: number;
  /** Files whose size or mtime moved while they were read (read again next round). */
  unsettled: Set<string>;
  /** A few of the paths that changed, to name in a reason. */
  examples: string[];
}

/**
 * Brings `tree` (the last state's entries, updated in place) in line with the tree on disk for
 * the suspects. Remembers, per path, the entry it had in the last state, so the point can write
 * only what differs. A file that cannot be read keeps its last version and is reported; a file
 * that vanishes while it is looked at is simply gone.
 */
export class TreeScanner {
  /** Entry in the last state of every path this point touched (undefined: it did not exist). */
  readonly before = new Map<string, VolumeEntry | undefined>();
  readonly unreadable = new Map<string, string>();
  readonly notes = new Map<string, string>();
  private report: ScanReport = { changed: 0, unsettled: new Set(), examples: [] };
  /** Counts the first round's files; null when nobody watches, or after that round. */
  progress: ScanProgress | null = null;

  /** Whether the round under way takes names from a watcher (`Suspects.named`). */
  private named = false;
  /**
   * With a watcher: the round claims the tree as it was at this instant (ns, engine clock). Each
   * path it looks at is then shown unchanged since: its ctime (which every write, chmod, rename
   * and link moves) older than that by more than the timestamp granularity, and for a path
   * found gone, the same of the nearest folder above it (a name going moves its folder). A path
   * not shown so is unsettled: the next round looks again.
   */
  stableSince: bigint | null = null;
  /** Paths this round showed as they were at `stableSince` (entry or absence). */
  readonly proven = new Set<string>();
  private gone: string[] = [];

  /** When each file was read in this point (ns since 1970, from the engine's clock). */
  private readonly readAt = new Map<string, bigint>();

  constructor(
    private readonly readRoot: Buffer,
    private readonly tree: VolumeTree,
    private readonly excludes: Excludes,
    private readonly files: FileBlockReader,
    private readonly nowNs: () => bigint = () => 0n,
  ) {
    files.breather = this.breather;
  }

  private readonly breather = new Breather();

  /**
   * Whether an event for `rel` only reports a write this point has already read: the file was
   * read in this point, its metadata are still those read, and its last change is older than the
   * read by more than any timestamp granularity (a later write would have moved mtime or ctime).
   * Watcher events come up to 500 ms late, so without this a big file written just before the
   * point would be read twice.
   */
  private echoOfRead(rel: string, entry: VolumeEntry): boolean {
    const readAt = this.readAt.get(rel);
    // Whole-second times (FAT, some network filesystems): a later write may not move them.
    if (readAt === undefined || entry.mtimeNs % 1_000_000_000n === 0n) return false;
    const before = readAt - TIMESTAMP_SLACK_NS;
    return entry.mtimeNs < before && entry.ctimeNs < before;
  }

  async scan(s: Suspects): Promise<ScanReport> {
    this.report = { changed: 0, unsettled: new Set(), examples: [] };
    this.named = !s.all && s.named === true;
    this.proven.clear();
    this.gone = [];
    if (s.all) await this.examineDir('', true, false);
    else {
      for (const dir of s.dirs)
        if (!this.excludedAnyLevel(dir)) await this.examineDir(dir, false, false);
      for (const p of s.paths)
        if (p !== '' && !this.excludedAnyLevel(p)) await this.examinePath(p, true, false);
    }
    if (this.stableSince !== null) this.proveGone(this.stableSince);
    return this.report;
  }

  /** Whether metadata last changed before `since` by more than any timestamp granularity. */
  private static older(ctimeNs: bigint, since: bigint): boolean {
    return ctimeNs < since - TIMESTAMP_SLACK_NS;
  }

  /** Notes whether `rel`, as just looked at, is shown unchanged since the round began. */
  private settle(rel: string, ctimeNs: bigint): void {
    if (this.stableSince === null) return;
    if (TreeScanner.older(ctimeNs, this.stableSince)) this.proven.add(rel);
    else {
      this.proven.delete(rel);
      this.report.unsettled.add(rel);
    }
  }

  private proveGone(since: bigint): void {
    const folderOlder = new Map<string, boolean>();
    for (const rel of this.gone) {
      let up = rel;
      let older: boolean | undefined;
      while (older === undefined) {
        up = up.includes('/') ? up.slice(0, up.lastIndexOf('/')) : '';
        older = folderOlder.get(up);
        if (older !== undefined) break;
        try {
          older = TreeScanner.older(fs.lstatSync(this.abs(up), { bigint: true }).ctimeNs, since);
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          if (up === '' || (code !== 'ENOENT' && code !== 'ENOTDIR')) older = false;
          else continue;
        }
        folderOlder.set(up, older);
      }
      if (older) this.proven.add(rel);
      else this.report.unsettled.add(rel);
    }
  }

  private abs(rel: string): Buffer {
    return rel === ''
      ? this.readRoot
      : Buffer.concat([this.readRoot, SLASH, Buffer.from(rel, 'latin1')]);
  }

  private excludedAnyLevel(rel: string): boolean {
    let at = 0;
    for (;;) {
      const slash = rel.indexOf('/', at);
      if (this.excludes.excludes(slash < 0 ? rel : rel.slice(0, slash))) return true;
      if (slash < 0) return false;
      at = slash + 1;
    }
  }

  private async examineDir(dir: string, recursive: boolean, force: boolean): Promise<void> {
    let names: Buffer[];
    try {
      names = fs.readdirSync(this.abs(dir), { encoding: 'buffer' });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') {
        if (dir !== '') this.remove(dir);
        return;
      }
      // An unreadable folder keeps what the last state had in it.
      this.unreadable.set(dir, describe(err));
      return;
    }
    const live = new Set<string>();
    for (const name of names) {
      const rel = joinPath(dir, name.toString('latin1'));
      if (this.excludes.excludes(rel)) continue;
      live.add(rel);
      await this.examinePath(rel, force, recursive);
    }
    for (const child of [...this.tree.childrenOf(dir)]) if (!live.has(child)) this.remove(child);
  }

  private remove(rel: string): void {
    this.proven.delete(rel);
    if (this.stableSince !== null) this.gone.push(rel);
    if (!this.tree.has(rel)) return;
    // What goes may come back elsewhere (a move seen as removal, then creation): keep it findable.
    const removed = this.tree.delete(rel);
    for (const e of removed) {
      if (e.type === 'file') this.removedByInode.set(e.ino, e);
      this.touch(e.path, e);
    }
    this.counted(rel);
  }

  /** Records the last state's entry of `rel` before its first change in this point. */
  private touch(rel: string, old: VolumeEntry | undefined): void {
    if (!this.before.has(rel)) this.before.set(rel, old);
  }

  private async examinePath(rel: string, force: boolean, recursive: boolean): Promise<void> {
    const breath = this.breather.breathe();
    if (breath) await breath;
    let st: fs.BigIntStats;
    try {
      st = fs.lstatSync(this.abs(rel), { bigint: true });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') this.remove(rel);
      else this.unreadable.set(rel, describe(err));
      return;
    }
    this.settle(rel, st.ctimeNs);
    const old = this.tree.get(rel);
    const type = typeOfStats(st);
    const same =
      old !== undefined &&
      old.type === type &&
      old.mtimeNs === st.mtimeNs &&
      old.ctimeNs === st.ctimeNs &&
      old.ino === st.ino &&
      BigInt(old.size) === (type === 'dir' ? 0n : st.size);
    if (type === 'dir') {
      if (!same) this.put(rel, entryOf(rel, st, 'dir'));
      // A new folder is unknown below; a changed one may have gained or lost children.
      if (!old || old.type !== 'dir' || recursive)
        await this.examineDir(rel, recursive || !old || old.type !== 'dir', false);
      else if (!same && !this.named) await this.examineDir(rel, false, false);
      return;
    }
    if (same && !(force && type === 'file' && !this.echoOfRead(rel, old))) {
      if (type === 'file') this.progress?.add(old.size);
      return;
    }
    if (type !== 'file') {
      const entry = entryOf(rel, st, type);
      if (type === 'symlink') {
        try {
          entry.target = fs.readlinkSync(this.abs(rel), { encoding: 'buffer' }).toString('latin1');
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') this.remove(rel);
          else this.unreadable.set(rel, describe(err));
          return;
        }
      }
      if (type === 'socket') this.notes.set(rel, 'a socket: recorded, not restorable');
      this.put(rel, entry);
      return;
    }
    const moved = force ? undefined : this.movedContent(st);
    if (moved) {
      // Renamed or moved (its folder with it): same inode, size, mtime and ctime mean the same
      // content, which need not be read again.
      this.progress?.add(moved.size);
      const entry = entryOf(rel, st, 'file');
      entry.blocks = moved.blocks;
      entry.contentHash = moved.contentHash;
      if (moved.scanHashes) entry.scanHashes = moved.scanHashes;
      if (old && sameEntry(old, entry)) {
        this.touch(rel, old);
        this.tree.set(entry);
      } else this.put(rel, entry);
      return;
    }
    let content;
    try {
      this.readAt.set(rel, this.nowNs());
      content = await this.files.read(this.abs(rel), old?.type === 'file' ? old : undefined);
    } catch (err) {
      // A cancel from the progress sink is not an unreadable file.
      if (isTidemarkError(err)) throw err;
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') this.remove(rel);
      else if (code === 'ELOOP') {
        this.proven.delete(rel);
        this.report.unsettled.add(rel);
      } else this.unreadable.set(rel, describe(err));
      return;
    }
    if (content === 'not-a-file') {
      this.proven.delete(rel);
      this.report.unsettled.add(rel);
      return;
    }
    this.unreadable.delete(rel);
    this.settle(rel, content.stat.ctimeNs);
    if (content.changedWhileRead) {
      this.proven.delete(rel);
      this.report.unsettled.add(rel);
    }
    const entry = entryOf(rel, content.stat, 'file');
    entry.size = content.size;
    entry.blocks = content.blocks;
    entry.contentHash = content.contentHash;
    if (content.scanHashes) entry.scanHashes = content.scanHashes;
    if (old && sameEntry(old, entry)) {
      // Only tracking hints moved (a touch, a chmod back): keep them, count no change.
      this.touch(rel, old);
      this.tree.set(entry);
      return;
    }
    this.put(rel, entry);
  }

  /** Files removed in this point, by inode (the tree's own index has only those it holds). */
  private readonly removedByInode = new Map<bigint, VolumeEntry>();

  private movedContent(st: fs.BigIntStats): VolumeEntry | undefined {
    const e = this.tree.byInode().get(st.ino) ?? this.removedByInode.get(st.ino);
    const same =
      e !== undefined &&
      e.blocks !== undefined &&
      BigInt(e.size) === st.size &&
      e.mtimeNs === st.mtimeNs &&
      e.ctimeNs === st.ctimeNs;
    return same ? e : undefined;
  }

  private put(rel: string, entry: VolumeEntry): void {
    const old = this.tree.get(rel);
    if (old && old.type === 'dir' && entry.type !== 'dir')
      for (const p of [...this.tree.childrenOf(rel)]) this.remove(p);
    this.touch(rel, old);
    this.tree.set(entry);
    this.counted(rel);
  }

  private counted(rel: string): void {
    this.report.changed++;
    if (this.report.examples.length < 3) this.report.examples.push(rel);
  }
}

function entryOf(rel: string, st: fs.BigIntStats, type: VolumeEntry['type']): VolumeEntry {
  return {
    path: rel,
    type,
    mode: Number(st.mode & 0o7777n),
    uid: Number(st.uid),
    gid: Number(st.gid),
    mtimeNs: st.mtimeNs,
    size: type === 'dir' ? 0 : Number(st.size),
    rdev: type === 'char-device' || type === 'block-device' ? st.rdev : 0n,
    ino: st.ino,
    ctimeNs: st.ctimeNs,
    nlink: Number(st.nlink),
  };
}

/** Same state-relevant content and metadata (tracking hints aside). */
export function sameEntry(a: VolumeEntry, b: VolumeEntry): boolean {
  return (
    a.type === b.type &&
    a.mode === b.mode &&
    a.uid === b.uid &&
    a.gid === b.gid &&
    a.mtimeNs === b.mtimeNs &&
    a.size === b.size &&
    a.rdev === b.rdev &&
    a.target === b.target &&
    (a.contentHash === b.contentHash ||
      (a.contentHash !== undefined &&
        b.contentHash !== undefined &&
        a.contentHash.equals(b.contentHash)))
  );
}

function describe(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  if (e.code === 'EACCES' || e.code === 'EPERM') return 'permission denied';
  if (e.code === 'ENAMETOOLONG') return 'path too long';
  return e.code ? `${e.code}: ${e.message}` : String(err);
}
