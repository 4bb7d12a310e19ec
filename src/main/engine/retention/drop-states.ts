import { TidemarkError } from '../../../shared/errors.js';
import type { Archive } from '../archive.js';
import type { StateRow } from '../catalog.js';
import { UpdateReader } from '../format/update-reader.js';
import { loadStateMap } from '../state-loader.js';
import { StateMap } from '../state-map.js';
import { forEachChange, loadVolumeTree } from '../volume/tree-loader.js';
import { VolumeTree } from '../volume/volume-tree.js';
import { HASH_BYTES } from '../block-hash.js';
import { collapseUpdates } from './collapse.js';

/** One collapse: the dropped states before a kept one, merged into the kept one's update. */
export interface CollapseRun {
  /** The states whose updates are merged, oldest first; the last one is kept. */
  states: number[];
  into: number;
  /** The kept state it applies to; null when the run starts at the base (integration). */
  parent: number | null;
  update: string;
  bytesBefore: number;
  bytesAfter: number;
}

/**
 * Removes the states `drop` from the archive. Each run of dropped states is collapsed into the
 * update of the kept state after it (the newest state is never dropped); a run at the start is
 * integrated into the base. Runs are done newest first, each as: write and commit the merged
 * update, then record it in the catalog (one transaction), then delete what it replaced. A crash
 * at any instant leaves every state that is not in `drop` restorable; `Archive.open` finishes a
 * run whose update was committed (`follow` in archive.ts), and the others simply did not occur.
 */
export async function dropStates(
  archive: Archive,
  drop: ReadonlySet<number>,
  onRun?: (run: CollapseRun) => void,
): Promise<CollapseRun[]> {
  const rows = archive.catalog.states();
  const newest = rows[rows.length - 1];
  if (newest && drop.has(newest.id))
    throw new TidemarkError('internal', 'retention never drops the newest state');
  const runs: Array<{ start: number; end: number }> = [];
  let start = -1;
  rows.forEach((row, i) => {
    if (drop.has(row.id)) {
      if (start < 0) start = i;
    } else if (start >= 0) {
      runs.push({ start, end: i });
      start = -1;
    }
  });
  const done: CollapseRun[] = [];
  // Hashes used by the updates after the run being collapsed; grows as the runs go back in time.
  const later = new Set<string>();
  let laterFrom = rows.length;
  for (const run of runs.reverse()) {
    for (let i = run.end + 1; i < laterFrom; i++)
      await addReferenced(archive, (rows[i] as StateRow).update, later);
    laterFrom = run.start;
    const result = await collapseRun(archive, rows.slice(run.start, run.end + 1), later);
    for (const key of result.referenced) later.add(key);
    done.push(result.run);
    onRun?.(result.run);
  }
  return done;
}

async function collapseRun(
  archive: Archive,
  sources: StateRow[],
  later: Set<string>,
): Promise<{ run: CollapseRun; referenced: Set<string> }> {
  const first = sources[0] as StateRow;
  const last = sources[sources.length - 1] as StateRow;
  const { manifest } = archive;
  const device = manifest.primary.kind === 'device';
  const parent = first.parent;
  let parentState: StateMap | VolumeTree;
  if (device)
    parentState =
      parent === null
        ? new StateMap(manifest.primary.size, manifest.blockSize)
        : await loadStateMap(archive, parent);
  else parentState = parent === null ? new VolumeTree() : await loadVolumeTree(archive, parent);
  const result = await collapseUpdates({
    store: archive.store,
    kind: device ? 'device' : 'volume',
    blockSize: manifest.blockSize,
    sources: sources.map((s) => s.update),
    keepBlob: (key) => later.has(key),
    parentState,
  });
  const row: StateRow = {
    ...last,
    parent,
    update: result.name,
    changedBlocks: result.meta.changedBlocks,
    storedBytes: result.size,
  };
  await archive.catalog.atomically(async () => {
    archive.catalog.forgetUpdates(
      sources.map((s) => s.id),
      sources.map((s) => s.update),
    );
    archive.catalog.recordState(row, result.blobs);
  });
  // Sizes as the catalog recorded them: asking the store would cost a HEAD per source on S3.
  let bytesBefore = 0;
  for (const s of sources) {
    bytesBefore += s.storedBytes;
    await archive.store.delete(s.update);
  }
  return {
    run: {
      states: sources.map((s) => s.id),
      into: last.id,
      parent,
      update: result.name,
      bytesBefore,
      bytesAfter: result.size,
    },
    referenced: result.referenced,
  };
}

/** Adds every block hash update `name` references to `into` (latin1 keys). */
async function addReferenced(archive: Archive, name: string, into: Set<string>): Promise<void> {
  const reader = await UpdateReader.open(archive.store, name);
  if (archive.manifest.primary.kind === 'device') {
    await reader.forEachMapEntry((_i, hash) => into.add(hash.toString('latin1')));
    return;
  }
  await forEachChange(reader, (c) => {
    const blocks = c.op === 'upsert' ? c.entry.blocks : undefined;
    if (!blocks) return;
    for (let at = 0; at < blocks.length; at += HASH_BYTES)
      into.add(blocks.toString('latin1', at, at + HASH_BYTES));
  });
}
