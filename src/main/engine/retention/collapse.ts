/**
 * Collapse: merges the updates of consecutive states into one update (consolidation again: the
 * latest content per location over the merged range), without reading the primary. With the
 * baseline among the sources the result is a new baseline (integration into the base).
 *
 * How to call it (works on any ObjectStore, touches no catalog, deletes nothing):
 *
 *   const result = await collapseUpdates({
 *     store, kind: 'device' | 'volume', blockSize,
 *     sources: ['updates/0000000003.tmu', 'updates/0000000004.tmu'], // oldest first, consecutive
 *     keepBlob: (key) => laterUpdatesUse.has(key), // key = hash as latin1; the merged map's own
 *                                                  // blocks are always kept
 *     parentState,     // optional StateMap / VolumeTree of the parent state: checked before commit
 *   });
 *   // result.name is committed (durable, visible). Record result.meta / result.blobs in your
 *   // index, and only then delete the sources (DESIGN §3.4: write before delete).
 *
 * A block stored in a source survives only if the merged update references it or `keepBlob`
 * says a later update does (blocks are content addressed: later updates reference blocks stored
 * in earlier ones instead of storing them again). Blocks stored before the first source are not
 * touched: they are referenced, not copied.
 */
import { TidemarkError } from '../../../shared/errors.js';
import { walkRecords } from '../format/record-walker.js';
import { RECORD_BLOCK, type UpdateMeta } from '../format/update-format.js';
import { UpdateReader } from '../format/update-reader.js';
import { UpdateWriter } from '../format/update-writer.js';
import type { StateMap } from '../state-map.js';
import type { ObjectStore } from '../storage/object-store.js';
import { collapsedUpdateName, coveredFrom } from '../update-names.js';
import type { NewBlob } from '../volume/block-sink.js';
import { forEachChange } from '../volume/tree-loader.js';
import type { VolumeTree } from '../volume/volume-tree.js';
import { MergedEntries } from './merged-entries.js';
import { MergedMap } from './merged-map.js';

export interface CollapseOptions {
  store: ObjectStore;
  kind: 'device' | 'volume';
  blockSize: number;
  /** Update objects to merge, oldest first: each one applies to the state the previous produces. */
  sources: string[];
  /** Whether a block stored in a source is still used by a later update (key: hash as latin1). */
  keepBlob?: (key: string) => boolean;
  /** The full parent state: when given, the merged update must reproduce the last state's hash. */
  parentState?: StateMap | VolumeTree;
  /** Name of the result; default `collapsedUpdateName(last state, first covered state)`. */
  output?: string;
}

export interface CollapseResult {
  name: string;
  meta: UpdateMeta;
  /** Size of the new object in bytes. */
  size: number;
  /** Blocks stored in the new object (carried out of the sources). */
  blobs: NewBlob[];
  /** Every block hash the merged update references (latin1 keys). */
  referenced: Set<string>;
  /** Bytes of stored blocks in the sources that were not carried (what the range held alone). */
  droppedBlockBytes: number;
}

const FRAME_BYTES = 1 << 20;

export async function collapseUpdates(options: CollapseOptions): Promise<CollapseResult> {
  const { store, sources } = options;
  if (sources.length === 0) throw new TidemarkError('internal', 'nothing to collapse');
  const readers: UpdateReader[] = [];
  for (const name of sources) readers.push(await UpdateReader.open(store, name));
  const first = (readers[0] as UpdateReader).meta;
  const last = (readers[readers.length - 1] as UpdateReader).meta;
  for (let i = 1; i < readers.length; i++) {
    const r = readers[i] as UpdateReader;
    if (r.meta.parentStateId !== (readers[i - 1] as UpdateReader).meta.stateId)
      throw new TidemarkError(
        'internal',
        `cannot collapse: ${r.name} does not apply to ${(readers[i - 1] as UpdateReader).name}`,
      );
  }
  const baseline = first.parentStateId === null;
  const merged =
    options.kind === 'device'
      ? new MergedMap(last.primarySize, options.blockSize)
      : new MergedEntries(baseline);
  for (const r of readers) {
    if (merged instanceof MergedMap) await r.forEachMapEntry((i, h) => merged.set(i, h));
    else await forEachChange(r, (c) => merged.apply(c));
  }
  if (options.parentState) {
    // The merged update must take the parent to exactly the last state: proven before it exists.
    const hash =
      merged instanceof MergedMap
        ? merged.applyTo(options.parentState as StateMap)
        : merged.applyTo(options.parentState as VolumeTree);
    if (hash !== last.stateHash)
      throw new TidemarkError(
        'archive.corrupt',
        `collapsing ${sources.join(', ')} does not reproduce state ${last.stateId}: left as it was`,
      );
  }
  const referenced = merged.referenced();
  const from = coveredFrom(sources[0] as string) ?? first.stateId;
  const name = options.output ?? collapsedUpdateName(last.stateId, from);
  const writer = await UpdateWriter.create(store, name, options.blockSize);
  try {
    const { blobs, droppedBlockBytes } = await carryBlocks(
      readers,
      writer,
      (key) => referenced.has(key) || (options.keepBlob?.(key) ?? false),
    );
    let changedBlocks: number;
    let changedFiles: number | undefined;
    if (merged instanceof MergedMap) changedBlocks = await merged.writeTo(writer);
    else {
      ({ changedBlocks, changedFiles } = await merged.writeTo(writer, FRAME_BYTES));
    }
    const meta: UpdateMeta = {
      ...last,
      parentStateId: first.parentStateId,
      changedBlocks,
      storedBlocks: writer.storedBlocks,
      collapsedFrom: from,
      ...(changedFiles === undefined ? {} : { changedFiles }),
    };
    const size = await writer.finish(meta);
    return { name, meta, size, blobs, referenced, droppedBlockBytes };
  } catch (err) {
    await writer.abort();
    throw err;
  }
}

/** Copies the blocks stored in the sources that `keep` wants into the new update, as stored. */
async function carryBlocks(
  readers: UpdateReader[],
  writer: UpdateWriter,
  keep: (key: string) => boolean,
): Promise<{ blobs: NewBlob[]; droppedBlockBytes: number }> {
  const blobs: NewBlob[] = [];
  const carried = new Set<string>();
  let droppedBlockBytes = 0;
  for (const r of readers) {
    const [start, end] = r.recordsRange;
    await walkRecords(r.store, r.name, start, end, async (header, _offset, stored) => {
      if (header.kind !== RECORD_BLOCK) return;
      const key = header.hash.toString('latin1');
      if (carried.has(key)) return;
      if (!keep(key)) {
        droppedBlockBytes += stored.length;
        return;
      }
      carried.add(key);
      const hash = Buffer.from(header.hash);
      const at = await writer.addStoredBlock(hash, header.rawLength, header.codec, stored);
      blobs.push({ hash, ...at });
    });
  }
  return { blobs, droppedBlockBytes };
}
