import {
  comparePaths,
  leafLength,
  stateHashOfLeaves,
  writeLeaf,
  type EntryChange,
  type VolumeEntry,
} from './volume-entry.js';

/** Parent of a tree path ('' for the root's children). */
export function parentOf(path: string): string {
  const slash = path.lastIndexOf('/');
  return slash < 0 ? '' : path.slice(0, slash);
}

export function joinPath(dir: string, name: string): string {
  return dir === '' ? name : `${dir}/${name}`;
}

/**
 * Every entry of one state of a volume, by path, with an index of each folder's children so a
 * rescan of one folder compares only what it holds. The root folder itself is not an entry.
 */
export class VolumeTree {
  private readonly entries = new Map<string, VolumeEntry>();
  private readonly children = new Map<string, Set<string>>();
  /**
   * The entries in path order as of the last `sorted()`, and the paths set or removed since:
   * a point changes a few hundred paths of a tree of many thousands, so the order is brought up
   * to date by merging those in, not by sorting the whole tree again.
   */
  private order: Ordered | null = null;
  /**
   * The buffers of the order before the current one, written over by the next merge: a fresh
   * allocation of the tree's leaves costs a page fault per 4 KiB, every point.
   */
  private spare: Room | null = null;
  private readonly moved = new Set<string>();
  /** Bytes of the files, kept as entries come and go (a point must not walk the whole tree). */
  private fileBytes = 0;
  /** Files by inode, built on first need and kept up to date from then on. */
  private inodes: Map<bigint, VolumeEntry> | null = null;
  /** The state hash as of the last change (a point computes it while it waits, then commits). */
  private hash: string | null = null;

  get size(): number {
    return this.entries.size;
  }

  get(path: string): VolumeEntry | undefined {
    return this.entries.get(path);
  }

  has(path: string): boolean {
    return this.entries.has(path);
  }

  /** Paths directly inside folder `dir`. */
  childrenOf(dir: string): ReadonlySet<string> {
    return this.children.get(dir) ?? new Set();
  }

  set(entry: VolumeEntry): void {
    this.hash = null;
    const old = this.entries.get(entry.path);
    if (old && old.type === 'dir' && entry.type !== 'dir') this.removeUnder(entry.path);
    if (old?.type === 'file') this.forgetFile(old);
    if (entry.type === 'file') {
      this.fileBytes += entry.size;
      this.inodes?.set(entry.ino, entry);
    }
    this.entries.set(entry.path, entry);
    if (this.order) this.moved.add(entry.path);
    const parent = parentOf(entry.path);
    let set = this.children.get(parent);
    if (!set) this.children.set(parent, (set = new Set()));
    set.add(entry.path);
  }

  /** Removes `path` and, for a folder, everything under it; returns the removed entries. */
  delete(path: string): VolumeEntry[] {
    const entry = this.entries.get(path);
    if (!entry) return [];
    this.hash = null;
    const removed: VolumeEntry[] = [];
    this.removeUnder(path, removed);
    if (entry.type === 'file') this.forgetFile(entry);
    this.entries.delete(path);
    if (this.order) this.moved.add(path);
    this.children.get(parentOf(path))?.delete(path);
    removed.push(entry);
    return removed;
  }

  private removeUnder(dir: string, removed: VolumeEntry[] = []): VolumeEntry[] {
    for (const child of this.children.get(dir) ?? []) {
      this.removeUnder(child, removed);
      const entry = this.entries.get(child);
      if (entry) removed.push(entry);
      if (entry?.type === 'file') this.forgetFile(entry);
      this.entries.delete(child);
      if (this.order) this.moved.add(child);
    }
    this.children.delete(dir);
    return removed;
  }

  apply(change: EntryChange): void {
    if (change.op === 'delete') this.delete(change.path);
    else this.set(change.entry);
  }

  /** Entries in no particular order. */
  values(): IterableIterator<VolumeEntry> {
    return this.entries.values();
  }

  /**
   * Entries in byte order of their paths (the state hash's order). The array is shared until
   * the next change: callers must not modify it.
   */
  sorted(): VolumeEntry[] {
    return this.ordered().entries;
  }

  /** The order and its state-hash leaves, brought up to date with the paths moved since. */
  private ordered(): Ordered {
    if (!this.order) {
      this.order = fullOrder([...this.entries.values()].sort(byPath));
      this.moved.clear();
    } else if (this.moved.size > 0) {
      const next = mergeOrder(this.order, this.moved, this.entries, this.spare);
      this.spare = this.order.room;
      this.order = next;
      this.moved.clear();
    }
    return this.order;
  }

  /** Entries at or under `path` ('' for all), in byte order. */
  under(path: string): VolumeEntry[] {
    if (path === '') return this.sorted();
    const prefix = `${path}/`;
    return this.sorted().filter((e) => e.path === path || e.path.startsWith(prefix));
  }

  stateHash(): string {
    return (this.hash ??= stateHashOfLeaves(this.ordered().leaves));
  }

  /** Total bytes of the files. */
  totalBytes(): number {
    return this.fileBytes;
  }

  /**
   * Files by inode (one of them where hard links share it). The first call walks the tree; the
   * index is then kept as entries change, so a point that looks content up by inode (a folder
   * moved in) does not walk a tree of many thousands of files again.
   */
  byInode(): ReadonlyMap<bigint, VolumeEntry> {
    if (!this.inodes) {
      this.inodes = new Map();
      for (const e of this.entries.values()) if (e.type === 'file') this.inodes.set(e.ino, e);
    }
    return this.inodes;
  }

  private forgetFile(entry: VolumeEntry): void {
    this.fileBytes -= entry.size;
    // Another link of the inode may stay: the index loses it, which costs a read, never a wrong hit.
    if (this.inodes?.get(entry.ino) === entry) this.inodes.delete(entry.ino);
  }
}

function byPath(a: VolumeEntry, b: VolumeEntry): number {
  return comparePaths(a.path, b.path);
}

/** Entries in path order with their state-hash leaves, concatenated; entry i ends at ends[i]. */
interface Ordered {
  entries: VolumeEntry[];
  leaves: Buffer;
  ends: Uint32Array;
  /** What `leaves` and `ends` are views of (never pooled: reused for a later order). */
  room: Room;
}

interface Room {
  leaves: Buffer;
  ends: Uint32Array;
}

/** `spare` when it holds `bytes` of leaves and `count` ends, else new buffers with some slack. */
function roomFor(spare: Room | null, bytes: number, count: number): Room {
  if (spare && spare.leaves.length >= bytes && spare.ends.length >= count) return spare;
  return {
    leaves: Buffer.allocUnsafeSlow(bytes + (bytes >> 4)),
    ends: new Uint32Array(count + (count >> 4)),
  };
}

function fullOrder(entries: VolumeEntry[]): Ordered {
  let bytes = 0;
  for (const e of entries) bytes += leafLength(e);
  const room = roomFor(null, bytes, entries.length);
  const { leaves, ends } = room;
  let at = 0;
  for (let i = 0; i < entries.length; i++) {
    at = writeLeaf(leaves, at, entries[i] as VolumeEntry);
    ends[i] = at;
  }
  return { entries, leaves: leaves.subarray(0, at), ends: ends.subarray(0, entries.length), room };
}

/**
 * The order after the paths in `moved` were set or removed: the others keep their place and
 * their leaves, copied over in runs; the moved ones still present are sorted and merged in. The
 * places of the moved paths are found by binary search, so the work per kept entry is a copy,
 * never a lookup or a comparison of its path (a point moves hundreds of a tree's many thousands).
 */
function mergeOrder(
  old: Ordered,
  moved: ReadonlySet<string>,
  current: ReadonlyMap<string, VolumeEntry>,
  spare: Room | null,
): Ordered {
  const fresh: VolumeEntry[] = [];
  let freshBytes = 0;
  const dropped: number[] = [];
  for (const p of moved) {
    const e = current.get(p);
    if (e) {
      fresh.push(e);
      freshBytes += leafLength(e);
    }
    const at = lowerBound(old.entries, p);
    if (at < old.entries.length && (old.entries[at] as VolumeEntry).path === p) dropped.push(at);
  }
  fresh.sort(byPath);
  dropped.sort((a, b) => a - b);
  const entries: VolumeEntry[] = new Array(current.size);
  const room = roomFor(spare, old.leaves.length + freshBytes, current.size);
  const { leaves, ends } = room;
  let n = 0;
  let at = 0;
  /** Copies the kept entries [from, to) of the old order, leaves and all, in one go. */
  const copyRun = (from: number, to: number): void => {
    if (to <= from) return;
    const start = from === 0 ? 0 : (old.ends[from - 1] as number);
    const shift = at - start;
    old.leaves.copy(leaves, at, start, old.ends[to - 1]);
    for (let i = from; i < to; i++) {
      entries[n] = old.entries[i] as VolumeEntry;
      ends[n++] = (old.ends[i] as number) + shift;
    }
    at = (old.ends[to - 1] as number) + shift;
  };
  let i = 0;
  let d = 0;
  let j = 0;
  while (j < fresh.length || d < dropped.length) {
    const f = fresh[j];
    const insertAt = f ? lowerBound(old.entries, f.path, i) : old.entries.length;
    const dropAt = d < dropped.length ? (dropped[d] as number) : old.entries.length;
    // A fresh entry goes before an old one at the same place (its own old version, dropped).
    if (f && insertAt <= dropAt) {
      copyRun(i, insertAt);
      i = Math.max(i, insertAt);
      entries[n] = f;
      at = writeLeaf(leaves, at, f);
      ends[n++] = at;
      j++;
    } else {
      copyRun(i, dropAt);
      i = dropAt + 1;
      d++;
    }
  }
  copyRun(i, old.entries.length);
  entries.length = n;
  return { entries, leaves: leaves.subarray(0, at), ends: ends.subarray(0, n), room };
}

/** The first index at or after `from` whose entry's path is not below `path`. */
function lowerBound(sorted: VolumeEntry[], path: string, from = 0): number {
  let lo = from;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (comparePaths((sorted[mid] as VolumeEntry).path, path) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
