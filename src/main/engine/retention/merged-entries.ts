import { HASH_BYTES } from '../block-hash.js';
import { RECORD_ENTRY_FRAME } from '../format/update-format.js';
import type { UpdateWriter } from '../format/update-writer.js';
import {
  comparePaths,
  encodeChange,
  encodedLength,
  type EntryChange,
  type VolumeEntry,
} from '../volume/volume-entry.js';
import { parentOf, type VolumeTree } from '../volume/volume-tree.js';

interface Pending {
  /** The path's entry at the end of the range; undefined: it does not exist then. */
  entry?: VolumeEntry;
  /** Whatever the path held before the range must go first (a removal, or a folder replaced). */
  removeFirst: boolean;
  /** A non-folder entry was set here in the range (a later folder must not inherit old children). */
  nonDir: boolean;
}

/**
 * The entry changes of several consecutive volume updates merged into the changes of one: the
 * last entry of every path touched, and a removal for every path whose earlier content must go
 * (removed, or a folder replaced by a file and made a folder again). Applied removals first and
 * then entries in path order, as every volume update is, they take the parent state to the last
 * state, without knowing the parent state: a removal in the range also forgets what was set
 * under the path before it.
 */
export class MergedEntries {
  private readonly pending = new Map<string, Pending>();
  /** Every path registered, pending or not, under its parent: to find what lies under a path. */
  private readonly children = new Map<string, Set<string>>();

  constructor(private readonly baseline: boolean) {}

  apply(change: EntryChange): void {
    if (change.op === 'delete') {
      this.forgetUnder(change.path);
      this.record(change.path, { removeFirst: true, nonDir: false });
      return;
    }
    const e = change.entry;
    const old = this.pending.get(e.path);
    if (e.type !== 'dir') this.forgetUnder(e.path);
    this.record(e.path, {
      entry: e,
      removeFirst: old?.removeFirst === true || (e.type === 'dir' && old?.nonDir === true),
      nonDir: e.type !== 'dir' || old?.nonDir === true,
    });
  }

  private record(path: string, p: Pending): void {
    this.pending.set(path, p);
    let child = path;
    while (child !== '') {
      const parent = parentOf(child);
      let set = this.children.get(parent);
      if (!set) this.children.set(parent, (set = new Set()));
      if (set.has(child)) break;
      set.add(child);
      child = parent;
    }
  }

  /** Drops what the range set under `path`: it is gone once the path is removed or replaced. */
  private forgetUnder(path: string): void {
    const set = this.children.get(path);
    if (!set) return;
    for (const child of set) {
      this.forgetUnder(child);
      this.pending.delete(child);
    }
    this.children.delete(path);
  }

  changes(): EntryChange[] {
    const removals: EntryChange[] = [];
    const entries: VolumeEntry[] = [];
    for (const [path, p] of this.pending) {
      if (p.removeFirst && !this.baseline) removals.push({ op: 'delete', path });
      if (p.entry) entries.push(p.entry);
    }
    removals.sort((a, b) => comparePaths(pathOf(a), pathOf(b)));
    entries.sort((a, b) => comparePaths(a.path, b.path));
    return [...removals, ...entries.map((entry) => ({ op: 'upsert' as const, entry }))];
  }

  referenced(): Set<string> {
    const keys = new Set<string>();
    for (const p of this.pending.values()) {
      const blocks = p.entry?.blocks;
      if (!blocks) continue;
      for (let at = 0; at < blocks.length; at += HASH_BYTES)
        keys.add(blocks.toString('latin1', at, at + HASH_BYTES));
    }
    return keys;
  }

  /** Applies the merged changes to `tree` (the parent state) and returns its state hash. */
  applyTo(tree: VolumeTree): string {
    for (const c of this.changes()) tree.apply(c);
    return tree.stateHash();
  }

  async writeTo(
    writer: UpdateWriter,
    frameBytes: number,
  ): Promise<{ changedBlocks: number; changedFiles: number }> {
    let frame = Buffer.allocUnsafe(frameBytes);
    let used = 0;
    let changedBlocks = 0;
    const changes = this.changes();
    for (const c of changes) {
      const n = encodedLength(c);
      if (used + n > frame.length && used > 0) {
        await writer.addFrame(RECORD_ENTRY_FRAME, frame.subarray(0, used));
        used = 0;
      }
      if (n > frame.length) frame = Buffer.allocUnsafe(n);
      used = encodeChange(frame, used, c);
      if (c.op === 'upsert') changedBlocks += (c.entry.blocks?.length ?? 0) / HASH_BYTES;
    }
    if (used > 0) await writer.addFrame(RECORD_ENTRY_FRAME, frame.subarray(0, used));
    return { changedBlocks, changedFiles: changes.length };
  }
}

function pathOf(c: EntryChange): string {
  return c.op === 'delete' ? c.path : c.entry.path;
}
