import { TidemarkError } from '../../../shared/errors.js';
import type { Archive } from '../archive.js';
import type { ObjectStore } from '../storage/object-store.js';

/**
 * Pins are small immutable objects `pins/NNNNNNNNNN` (one per pinned state), not catalog rows:
 * they survive a catalog rebuild, and pinning or unpinning is one put-if-absent or one delete.
 */
export const PIN_PREFIX = 'pins/';

function pinName(stateId: number): string {
  return `${PIN_PREFIX}${String(stateId).padStart(10, '0')}`;
}

export async function pinnedStates(store: ObjectStore): Promise<Set<number>> {
  const ids = new Set<number>();
  for (const name of await store.list(PIN_PREFIX)) {
    const m = /^pins\/(\d{10})$/.exec(name);
    if (m) ids.add(Number(m[1]));
  }
  return ids;
}

/** Pins or unpins `stateId` (the caller holds the archive lock). Returns whether anything changed. */
export async function setPinned(
  archive: Archive,
  stateId: number,
  pinned: boolean,
): Promise<boolean> {
  if (!archive.catalog.state(stateId))
    throw new TidemarkError('state.not-found', `state ${stateId} does not exist in this archive`);
  const name = pinName(stateId);
  const exists = await archive.store.exists(name);
  if (exists === pinned) return false;
  if (!pinned) {
    await archive.store.delete(name);
    return true;
  }
  const writer = await archive.store.create(name);
  try {
    await writer.write(Buffer.from(JSON.stringify({ state: stateId }) + '\n'));
    await writer.commit();
  } catch (err) {
    await writer.abort();
    throw err;
  }
  return true;
}
