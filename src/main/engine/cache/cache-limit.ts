import { Archive } from '../archive.js';
import type { StateRow } from '../catalog.js';
import { UpdateReader } from '../format/update-reader.js';
import { collapseUpdates } from '../retention/collapse.js';
import { coveredFrom } from '../update-names.js';
import type { CacheEntry } from './cache-entry.js';
import { forEachReferencedBlock } from './update-references.js';

/** One collapse made to keep the cache within its limit. */
export interface CollapseReport {
  /** States whose updates were merged: `from`..`to`; those before `to` are gone. */
  from: number;
  to: number;
  /** States removed by this collapse. */
  removedStates: number[];
  /** Bytes the cache took before and after. */
  bytesBefore: number;
  bytesAfter: number;
}

/**
 * While the cached updates take more than `limitBytes`, merges the two oldest into one (latest
 * content per location over both: fewer states, no change lost), carrying the blocks later cached
 * updates still refer to. The newest state is never merged away, and nothing is ever dropped: a
 * single update larger than the limit stays, and the caller reports the cache as over its limit.
 * The collapse commits its result before its catalog records it and before the sources go; a crash
 * in between is finished when the cache is next opened for writing.
 */
export async function collapseToFit(
  entry: CacheEntry,
  limitBytes: number,
): Promise<CollapseReport[]> {
  const reports: CollapseReport[] = [];
  let bytes = await entry.pendingBytes();
  if (bytes <= limitBytes) return reports;
  const archive = await Archive.open(entry.dir, { write: true });
  try {
    const kind = archive.manifest.primary.kind;
    for (;;) {
      const pending = await entry.pending();
      if (bytes <= limitBytes || pending.length < 2) break;
      const [a, b] = pending as [{ id: number; name: string }, { id: number; name: string }];
      const later = new Set<string>();
      for (const u of pending.slice(2)) {
        const reader = await UpdateReader.open(archive.store, u.name);
        await forEachReferencedBlock(reader, kind, (h) => later.add(h.toString('latin1')));
      }
      const result = await collapseUpdates({
        store: archive.store,
        kind,
        blockSize: archive.manifest.blockSize,
        sources: [a.name, b.name],
        keepBlob: (key) => later.has(key),
      });
      const removed = archive.catalog
        .states()
        .filter((s) => s.id >= (coveredFrom(a.name) ?? a.id) && s.id < b.id)
        .map((s) => s.id);
      const row: StateRow = {
        id: result.meta.stateId,
        parent: result.meta.parentStateId,
        time: result.meta.time,
        timeMs: Date.parse(result.meta.time),
        update: result.name,
        changedBlocks: result.meta.changedBlocks,
        storedBytes: result.size,
        stateHash: result.meta.stateHash,
        consistency: result.meta.consistency,
        ...(result.meta.consistencyReason
          ? { consistencyReason: result.meta.consistencyReason }
          : {}),
      };
      await archive.catalog.atomically(async () => {
        archive.catalog.forgetUpdates([...removed, b.id], [a.name, b.name]);
        archive.catalog.recordState(row, result.blobs);
      });
      await archive.store.delete(a.name);
      await archive.store.delete(b.name);
      const after = await entry.pendingBytes();
      reports.push({
        from: coveredFrom(result.name) ?? a.id,
        to: b.id,
        removedStates: removed,
        bytesBefore: bytes,
        bytesAfter: after,
      });
      bytes = after;
    }
  } finally {
    await archive.close();
  }
  return reports;
}
