import * as path from 'node:path';
import { TidemarkError } from '../../../shared/errors.js';
import type { StateRow } from '../catalog.js';
import type { ArchiveManifest } from '../format/archive-manifest.js';
import { RECORD_ENTRY_FRAME, type UpdateMeta } from '../format/update-format.js';
import { UpdateWriter } from '../format/update-writer.js';
import { FORMAT_VERSION } from '../format/version.js';
import { MapCache, MAP_CACHE_NAME } from '../map-cache.js';
import type { StateMap } from '../state-map.js';
import { FolderStore } from '../storage/folder-store.js';
import { updateName } from '../update-names.js';
import { encodeChange, encodedLength } from '../volume/volume-entry.js';
import type { VolumeTree } from '../volume/volume-tree.js';
import type { CacheEntry } from './cache-entry.js';

const FRAME_BYTES = 1 << 20;

/** The cache's copy of the latest block map: the one a device capture into the cache starts from. */
export function cacheMapOf(entry: CacheEntry): MapCache {
  return new MapCache(path.join(entry.dir, MAP_CACHE_NAME));
}

function anchorMeta(manifest: ArchiveManifest, row: StateRow, changed: number): UpdateMeta {
  return {
    format: FORMAT_VERSION,
    archiveId: manifest.archiveId,
    stateId: row.id,
    parentStateId: row.parent,
    time: row.time,
    blockSize: manifest.blockSize,
    primarySize: manifest.primary.size,
    changedBlocks: changed,
    storedBlocks: 0,
    stateHash: row.stateHash,
    consistency: row.consistency,
    ...(row.consistencyReason ? { consistencyReason: row.consistencyReason } : {}),
  };
}

/**
 * Writes the anchor of a device cache: an update named after the secondary's last state that
 * maps every block and stores none. Laid under the cached updates it rebuilds their states'
 * block maps without the secondary; it is never shipped.
 */
export async function writeDeviceAnchor(
  entry: CacheEntry,
  manifest: ArchiveManifest,
  row: StateRow,
  map: StateMap,
): Promise<void> {
  const writer = await UpdateWriter.create(
    new FolderStore(entry.dir),
    updateName(row.id),
    manifest.blockSize,
  );
  try {
    for (let i = 0; i < map.blockCount; i++) await writer.addMapEntry(i, map.hashAt(i));
    await writer.finish(anchorMeta(manifest, row, map.blockCount));
  } catch (err) {
    await writer.abort();
    throw err;
  }
}

/** The anchor of a volume cache: every entry of the secondary's last state, no blocks. */
export async function writeVolumeAnchor(
  entry: CacheEntry,
  manifest: ArchiveManifest,
  row: StateRow,
  tree: VolumeTree,
): Promise<void> {
  if (tree.stateHash() !== row.stateHash)
    throw new TidemarkError('internal', `the tree given for state ${row.id} is another state's`);
  const writer = await UpdateWriter.create(
    new FolderStore(entry.dir),
    updateName(row.id),
    manifest.blockSize,
  );
  try {
    let frame = Buffer.allocUnsafe(FRAME_BYTES);
    let used = 0;
    for (const entryOfTree of tree.sorted()) {
      const change = { op: 'upsert' as const, entry: entryOfTree };
      const n = encodedLength(change);
      if (used + n > frame.length && used > 0) {
        await writer.addFrame(RECORD_ENTRY_FRAME, frame.subarray(0, used));
        used = 0;
      }
      if (n > frame.length) frame = Buffer.allocUnsafe(n);
      used = encodeChange(frame, used, change);
    }
    if (used > 0) await writer.addFrame(RECORD_ENTRY_FRAME, frame.subarray(0, used));
    const meta = anchorMeta(manifest, row, 0);
    meta.primarySize = tree.totalBytes();
    meta.changedFiles = tree.size;
    await writer.finish(meta);
  } catch (err) {
    await writer.abort();
    throw err;
  }
}
