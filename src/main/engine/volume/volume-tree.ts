import {
  comparePaths,
  volumeStateHash,
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
    const old = this.entries.get(entry.path);
    if (old && old.type === 'dir' && entry.type !== 'dir') this.removeUnder(entry.path);
    this.entries.set(entry.path, entry);
    const parent = parentOf(entry.path);
    let set = this.children.get(parent);
    if (!set) this.children.set(parent, (set = new Set()));
    set.add(entry.path);
  }

  /** Removes `path` and, for a folder, everything under it; returns the removed entries. */
  delete(path: string): VolumeEntry[] {
    const entry = this.entries.get(path);
    if (!entry) return [];
    const removed: VolumeEntry[] = [];
    this.removeUnder(path, removed);
    this.entries.delete(path);
    this.children.get(parentOf(path))?.delete(path);
    removed.push(entry);
    return removed;
  }

  private removeUnder(dir: string, removed: VolumeEntry[] = []): VolumeEntry[] {
    for (const child of this.children.get(dir) ?? []) {
      this.removeUnder(child, removed);
      const entry = this.entries.get(child);
      if (entry) removed.push(entry);
      this.entries.delete(child);
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

  /** Entries in byte order of their paths (the state hash's order). */
  sorted(): VolumeEntry[] {
    return [...this.entries.values()].sort((a, b) => comparePaths(a.path, b.path));
  }

  /** Entries at or under `path` ('' for all), in byte order. */
  under(path: string): VolumeEntry[] {
    if (path === '') return this.sorted();
    const prefix = `${path}/`;
    return this.sorted().filter((e) => e.path === path || e.path.startsWith(prefix));
  }

  stateHash(): string {
    return volumeStateHash(this.sorted());
  }

  /** Total bytes of the files. */
  totalBytes(): number {
    let n = 0;
    for (const e of this.entries.values()) if (e.type === 'file') n += e.size;
    return n;
  }
}
