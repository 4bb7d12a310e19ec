import { TidemarkError } from '../../shared/errors.js';
import type { Archive } from './archive.js';
import type { Catalog } from './catalog.js';
import { UpdateReader } from './format/update-reader.js';
import { indexUpdate } from './update-index.js';
import { stateIdOf } from './update-names.js';

/**
 * How a catalog stands against the updates its archive lists. Other catalogs write the same
 * archive: another machine's, or another state dir's on this one (the catalog of an s3:// or
 * encrypted archive is local). They add states, which are indexed one by one; and they prune: a
 * collapse stores its result under a new name, then deletes the updates it replaced. A catalog
 * that still names a deleted update sends restores to it and lets a snapshot reference blocks
 * stored only there (a state that never restores), so it is rebuilt from the live updates.
 */
export interface CatalogDrift {
  /** Live updates of states the catalog does not have, oldest first. */
  unrecorded: string[];
  /** It names an update that is not live: replaced by a committed collapse, or gone. */
  stale: boolean;
  /** It names an update that is not in the archive at all: nothing may be read through it. */
  gone: boolean;
}

/** Compares the catalog with a listing (as `partitionUpdates` splits it): one query, no I/O. */
export function catalogDrift(
  catalog: Catalog,
  listing: { live: string[]; superseded: string[] },
): CatalogDrift {
  const recorded = new Map(catalog.stateUpdates().map((s) => [s.id, s.update]));
  const unrecorded: string[] = [];
  let live = 0;
  for (const name of listing.live) {
    const known = recorded.get(stateIdOf(name) as number);
    if (known === undefined) unrecorded.push(name);
    else if (known === name) live++;
  }
  let listed = live;
  for (const name of listing.superseded)
    if (recorded.get(stateIdOf(name) as number) === name) listed++;
  // A listing names each object once and a row one object, so each row counts at most once: a
  // row not counted names an object the listing does not have.
  return { unrecorded, stale: live !== recorded.size, gone: listed !== recorded.size };
}

/**
 * Recreates the catalog from the live updates `names`, in one transaction: an update this build
 * cannot read (a newer format) or a full disk stops it with the old catalog in place, not an
 * emptied one. A damaged update is left out and named with `skipDamaged`, else it stops the
 * rebuild. Only for the holder of the archive lock.
 */
export async function rebuildCatalogFrom(
  archive: Archive,
  names: string[],
  skipDamaged: boolean,
): Promise<{ states: number; damaged: string[] }> {
  const { catalog } = archive;
  return catalog.atomically(async () => {
    catalog.clear();
    catalog.setMeta('archiveId', archive.manifest.archiveId);
    const damaged: string[] = [];
    for (const name of names) {
      try {
        await indexUpdate(catalog, await UpdateReader.open(archive.store, name));
      } catch (err) {
        if (!skipDamaged || !(err instanceof TidemarkError) || err.code !== 'archive.corrupt')
          throw err;
        damaged.push(name);
      }
    }
    return { states: names.length - damaged.length, damaged };
  });
}
