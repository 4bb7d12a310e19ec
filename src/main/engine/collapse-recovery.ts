import type { Archive } from './archive.js';
import { UpdateReader } from './format/update-reader.js';
import { indexUpdate } from './update-index.js';
import { partitionUpdates, stateIdOf, UPDATE_PREFIX } from './update-names.js';

/**
 * Finishes a collapse (retention) that a crash interrupted. A collapse commits its new update,
 * then records it in the catalog, then deletes the updates it replaces; whichever step was cut,
 * the committed new update is the truth. If the catalog still names a replaced update (or does
 * not name a live one) it is rebuilt from the live updates, in one transaction; then the
 * replaced updates are deleted. Only for the holder of the archive lock.
 */
export async function finishInterruptedCollapses(archive: Archive): Promise<number> {
  const { live, superseded } = partitionUpdates(await archive.store.list(UPDATE_PREFIX));
  if (superseded.length === 0) return 0;
  const liveSet = new Set(live);
  const rows = archive.catalog.states();
  const byId = new Map(rows.map((r) => [r.id, r.update]));
  const stale =
    rows.some((r) => !liveSet.has(r.update)) ||
    live.some((n) => byId.get(stateIdOf(n) as number) !== n);
  if (stale) {
    await archive.catalog.atomically(async () => {
      archive.catalog.clear();
      archive.catalog.setMeta('archiveId', archive.manifest.archiveId);
      for (const name of live)
        await indexUpdate(archive.catalog, await UpdateReader.open(archive.store, name));
    });
  }
  for (const name of superseded) await archive.store.delete(name);
  return superseded.length;
}
