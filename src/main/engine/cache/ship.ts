import { TidemarkError } from '../../../shared/errors.js';
import type { Archive } from '../archive.js';
import { walkRecords } from '../format/record-walker.js';
import { RECORD_BLOCK } from '../format/update-format.js';
import { UpdateReader } from '../format/update-reader.js';
import type { ObjectStore } from '../storage/object-store.js';
import { FolderStore } from '../storage/folder-store.js';
import { indexUpdate } from '../update-index.js';
import type { CacheEntry } from './cache-entry.js';
import { forEachReferencedBlock } from './update-references.js';

const COPY_CHUNK = 4 << 20;

export interface ShipProgress {
  /** A cached update is on the secondary and recorded in its catalog (`again`: it already was). */
  onShipped?: (stateId: number, bytes: number, again: boolean) => void;
}

/**
 * Ships the cached updates to the secondary, oldest first. Each is copied through the object
 * store (temporary name, fsync, rename), checked to refer only to blocks the secondary then
 * holds, and recorded in the secondary's catalog; only then is it counted as shipped. Cache
 * copies are released by the caller once every update is across. A crash at any instant leaves
 * either the update absent from the secondary (shipped again next time) or present whole (found
 * by the next open, recognised by its state hash and not shipped again).
 */
export async function shipPending(
  entry: CacheEntry,
  secondary: Archive,
  progress: ShipProgress = {},
): Promise<number[]> {
  const cacheStore = new FolderStore(entry.dir);
  const shipped: number[] = [];
  try {
    for (const { id, name } of await entry.pending()) {
      const cached = await UpdateReader.open(cacheStore, name);
      const there = secondary.catalog.state(id);
      if (there) {
        if (there.stateHash !== cached.meta.stateHash)
          throw new TidemarkError(
            'cache.conflict',
            `the secondary already has a different state ${id}: the cached updates from ${id} on cannot be shipped (cache folder ${entry.dir})`,
          );
        progress.onShipped?.(id, cached.size, true);
        shipped.push(id);
        continue;
      }
      const latest = secondary.catalog.latestState();
      if (latest?.id !== cached.meta.parentStateId)
        throw new TidemarkError(
          'cache.conflict',
          `cached state ${id} follows state ${cached.meta.parentStateId}, but the secondary's latest is ${latest?.id ?? 'none'}`,
        );
      await checkReferences(cached, secondary, secondary.manifest.primary.kind === 'device');
      await copyObject(cacheStore, secondary.store, name, cached.size);
      crashPointForTests(`ship-committed:${id}`);
      await indexUpdate(secondary.catalog, await UpdateReader.open(secondary.store, name));
      crashPointForTests(`ship-recorded:${id}`);
      progress.onShipped?.(id, cached.size, false);
      shipped.push(id);
    }
    crashPointForTests('ship-done');
  } finally {
    await cacheStore.close();
  }
  return shipped;
}

/**
 * A shipped update must be whole on the secondary: every block its map or entries name is either
 * stored in it or already held by the secondary. Cached updates dedup only against the cache,
 * so this holds unless the secondary lost blocks meanwhile; then nothing is shipped.
 */
async function checkReferences(
  update: UpdateReader,
  secondary: Archive,
  device: boolean,
): Promise<void> {
  const own = new Set<string>();
  const [start, end] = update.recordsRange;
  await walkRecords(update.store, update.name, start, end, (h) => {
    if (h.kind === RECORD_BLOCK) own.add(Buffer.from(h.hash).toString('hex'));
  });
  const wanted = new Map<string, Buffer>();
  await forEachReferencedBlock(update, device ? 'device' : 'volume', (hash) => {
    const key = hash.toString('hex');
    if (!own.has(key) && !wanted.has(key)) wanted.set(key, Buffer.from(hash));
  });
  if (wanted.size === 0) return;
  const found = secondary.catalog.findBlobs([...wanted.values()]);
  const missing = [...wanted.keys()].filter((k) => !found.has(k));
  if (missing.length > 0)
    throw new TidemarkError(
      'cache.conflict',
      `cached state ${update.meta.stateId} refers to ${missing.length} block(s) the secondary does not hold (first ${missing[0]}): not shipped`,
    );
}

/** Copies one committed object between stores (temporary name, commit): it appears whole or not. */
export async function copyObject(
  from: ObjectStore,
  to: ObjectStore,
  name: string,
  size: number,
): Promise<void> {
  const writer = await to.create(name);
  try {
    const buffer = Buffer.allocUnsafe(Math.min(COPY_CHUNK, Math.max(size, 1)));
    for (let at = 0; at < size; at += buffer.length) {
      const n = Math.min(buffer.length, size - at);
      await writer.write(await from.read(name, at, n, buffer));
    }
    await writer.commit();
  } catch (err) {
    await writer.abort();
    throw err;
  }
}

/**
 * Kill -9 at a named step when TIDEMARK_CRASH_AT names it, so the crash tests hit the exact
 * instants between commit, catalog and release instead of hoping a timer does.
 */
function crashPointForTests(point: string): void {
  if (process.env.TIDEMARK_CRASH_AT === point) process.kill(process.pid, 'SIGKILL');
}
