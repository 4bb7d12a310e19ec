import { TidemarkError } from '../../shared/errors.js';
import type { Archive } from './archive.js';
import { UpdateReader } from './format/update-reader.js';
import { StateMap } from './state-map.js';

/**
 * The full block map of state `stateId`: the catalog's cached map when it is that state's,
 * otherwise every update up to it laid over the previous ones. Either way it must reproduce the
 * state hash recorded for the state, or the archive is damaged.
 */
export async function loadStateMap(archive: Archive, stateId: number): Promise<StateMap> {
  const { primary, blockSize } = archive.manifest;
  const target = archive.catalog.state(stateId);
  if (!target)
    throw new TidemarkError('state.not-found', `state ${stateId} does not exist in this archive`);
  const cached = archive.mapCache.load(stateId, primary.size, blockSize, target.stateHash);
  if (cached) return cached;
  const map = new StateMap(primary.size, blockSize);
  for (const row of archive.catalog.states()) {
    if (row.id > stateId) break;
    const reader = await UpdateReader.open(archive.store, row.update);
    await reader.forEachMapEntry((index, hash) => map.set(index, hash));
  }
  if (map.stateHash() !== target.stateHash) {
    throw new TidemarkError(
      'archive.corrupt',
      `state ${stateId} cannot be rebuilt: its block maps do not match its state hash`,
    );
  }
  return map;
}
