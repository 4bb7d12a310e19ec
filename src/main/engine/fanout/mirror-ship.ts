import { TidemarkError } from '../../../shared/errors.js';
import type { Archive } from '../archive.js';
import { copyObject } from '../cache/ship.js';
import { forEachReferencedBlock } from '../cache/update-references.js';
import { walkRecords } from '../format/record-walker.js';
import {
  RECORD_BLOCK,
  RECORD_ENTRY_FRAME,
  RECORD_HEADER_BYTES,
  RECORD_MAP_FRAME,
} from '../format/update-format.js';
import { UpdateReader } from '../format/update-reader.js';
import { UpdateWriter } from '../format/update-writer.js';
import { indexUpdate } from '../update-index.js';
import type { MirrorQueue } from './mirror-queue.js';

/** Archives that may hold blocks an update refers to without storing them (the main one, the cache). */
export type BlockSources = Archive[];

/**
 * Ships a secondary's queue to it, oldest first, like the local cache ships to the main secondary
 * (cache/ship.ts): each update is committed through the secondary's own store (so an encrypted
 * one receives it encrypted under its own key), recorded in its catalog, and only then removed
 * from the queue. A kill at any instant leaves the update absent (shipped again) or whole (found
 * by the next open, recognised by its state hash, dropped from the queue).
 *
 * The secondary keeps its own retention, so it may have dropped a block that a later update
 * refers to without storing it (a content that comes back). Such an update is re-encoded for it
 * with those blocks carried in, read from `sources`; it then stands on its own on that secondary.
 */
export async function shipQueue(
  queue: MirrorQueue,
  mirror: Archive,
  sources: BlockSources,
  onShipped?: (stateId: number) => void,
): Promise<number[]> {
  const store = queue.store();
  const shipped: number[] = [];
  try {
    for (const { id, name } of await queue.updates()) {
      const queued = await UpdateReader.open(store, name);
      const there = mirror.catalog.state(id);
      if (there) {
        if (there.stateHash !== queued.meta.stateHash)
          throw new TidemarkError(
            'cache.conflict',
            `the secondary ${queue.target} already has a different state ${id}: its queue from ${id} on cannot be shipped`,
          );
      } else {
        const latest = mirror.catalog.latestState();
        if (latest?.id !== queued.meta.parentStateId)
          throw new TidemarkError(
            'cache.conflict',
            `state ${id} follows state ${queued.meta.parentStateId}, but the latest state of the secondary ${queue.target} is ${latest?.id ?? 'none'}`,
          );
        const missing = await missingBlocks(queued, mirror);
        if (missing.length === 0) await copyObject(store, mirror.store, name, queued.size);
        else await reencode(queued, mirror, missing, sources, queue.target);
        crashPointForTests(`mirror-committed:${id}`);
        await indexUpdate(mirror.catalog, await UpdateReader.open(mirror.store, name));
        crashPointForTests(`mirror-recorded:${id}`);
        shipped.push(id);
        onShipped?.(id);
      }
      await store.delete(name);
    }
  } finally {
    await store.close();
  }
  return shipped;
}

/** Blocks `update` names but neither stores nor finds on `mirror`. */
async function missingBlocks(update: UpdateReader, mirror: Archive): Promise<Buffer[]> {
  const own = new Set<string>();
  const [start, end] = update.recordsRange;
  await walkRecords(update.store, update.name, start, end, (h) => {
    if (h.kind === RECORD_BLOCK) own.add(Buffer.from(h.hash).toString('latin1'));
  });
  const wanted = new Map<string, Buffer>();
  await forEachReferencedBlock(update, mirror.manifest.primary.kind, (hash) => {
    const key = hash.toString('latin1');
    if (!own.has(key) && !wanted.has(key)) wanted.set(key, Buffer.from(hash));
  });
  if (wanted.size === 0) return [];
  const found = mirror.catalog.findBlobs([...wanted.values()]);
  return [...wanted.values()].filter((h) => !found.has(h.toString('hex')));
}

/** Writes `update` to `mirror` with the `missing` blocks (read from `sources`) carried in. */
async function reencode(
  update: UpdateReader,
  mirror: Archive,
  missing: Buffer[],
  sources: BlockSources,
  target: string,
): Promise<void> {
  const writer = await UpdateWriter.create(mirror.store, update.name, update.meta.blockSize);
  try {
    const [start, end] = update.recordsRange;
    await walkRecords(update.store, update.name, start, end, async (h, _at, stored) => {
      if (h.kind === RECORD_BLOCK)
        await writer.addStoredBlock(h.hash, h.rawLength, h.codec, stored);
    });
    let left = missing;
    for (const source of sources) {
      if (left.length === 0) break;
      const found = source.catalog.findBlobs(left);
      for (const hash of left) {
        const at = found.get(hash.toString('hex'));
        if (!at) continue;
        const stored = await source.store.read(
          at.update,
          at.offset + RECORD_HEADER_BYTES,
          at.storedLength,
        );
        await writer.addStoredBlock(hash, at.rawLength, at.codec, stored);
      }
      left = left.filter((h) => !found.has(h.toString('hex')));
    }
    if (left.length > 0)
      throw new TidemarkError(
        'cache.needs-secondary',
        `state ${update.meta.stateId} refers to ${left.length} block(s) the secondary ${target} no longer holds (its retention dropped them) and that no reachable archive holds: it catches up once the main secondary is back`,
        { retryable: true },
      );
    const kind = mirror.manifest.primary.kind === 'device' ? RECORD_MAP_FRAME : RECORD_ENTRY_FRAME;
    await update.forEachFrame(kind, (raw) => writer.addFrame(kind, raw));
    await writer.finish({ ...update.meta, storedBlocks: writer.storedBlocks });
  } catch (err) {
    await writer.abort();
    throw err;
  }
}

/** Kill -9 at a named step when TIDEMARK_CRASH_AT names it (crash tests). */
function crashPointForTests(point: string): void {
  if (process.env.TIDEMARK_CRASH_AT === point) process.kill(process.pid, 'SIGKILL');
}
