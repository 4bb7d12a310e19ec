import { TidemarkError } from '../../../shared/errors.js';
import type { Archive } from '../archive.js';
import { RECORD_ENTRY_FRAME } from '../format/update-format.js';
import { UpdateReader } from '../format/update-reader.js';
import { decodeChanges, type EntryChange } from './volume-entry.js';
import { VolumeTree } from './volume-tree.js';

/** Calls `visit` for every entry change an update records, in order. */
export async function forEachChange(
  reader: UpdateReader,
  visit: (change: EntryChange) => void,
): Promise<void> {
  await reader.forEachFrame(RECORD_ENTRY_FRAME, (raw) => decodeChanges(raw, reader.name, visit));
}

/**
 * The tree of state `stateId`: the baseline's entries with every later update's changes laid
 * over them in order. It must reproduce the state hash recorded for the state, or the archive is
 * damaged. `onState` sees the tree after each state on the way (history and diff use it).
 */
export async function loadVolumeTree(
  archive: Archive,
  stateId: number,
  onState?: (id: number, tree: VolumeTree) => void,
): Promise<VolumeTree> {
  const target = archive.catalog.state(stateId);
  if (!target)
    throw new TidemarkError('state.not-found', `state ${stateId} does not exist in this archive`);
  const tree = new VolumeTree();
  for (const row of archive.catalog.states()) {
    if (row.id > stateId) break;
    const reader = await UpdateReader.open(archive.store, row.update);
    await forEachChange(reader, (c) => tree.apply(c));
    onState?.(row.id, tree);
  }
  if (tree.stateHash() !== target.stateHash) {
    throw new TidemarkError(
      'archive.corrupt',
      `state ${stateId} cannot be rebuilt: its file entries do not match its state hash`,
    );
  }
  return tree;
}
