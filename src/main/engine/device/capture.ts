import { TidemarkError } from '../../../shared/errors.js';
import { alignedBuffer } from '../aligned-buffer.js';
import type { Consistency } from '../../../shared/states.js';
import type { Archive } from '../archive.js';
import { hashBlock, isZero, zeroHash } from '../block-hash.js';
import type { NewBlob, PendingState, StateRow } from '../catalog.js';
import type { Clock } from '../clock.js';
import type { UpdateMeta } from '../format/update-format.js';
import { UpdateWriter } from '../format/update-writer.js';
import { BlockCompressor, type CompressedBatch } from '../block-compressor.js';
import { FORMAT_VERSION } from '../format/version.js';
import type { Journal } from '../journal.js';
import { loadStateMap } from '../state-loader.js';
import { ScanHasher, UNKNOWN_SCAN_HASH } from '../scan-hash.js';
import { StateMap } from '../state-map.js';
import { updateName } from '../update-names.js';
import { PrimaryDevice } from './primary-device.js';
import { stopReadAhead } from './read-ahead.js';
import { gradeSource } from './quiescence.js';

const CHUNK_BYTES = 8 << 20;
const MAX_RETRIES = 2;

export interface CaptureOptions {
  clock: Clock;
  /** Read only the blocks this journal names instead of scanning the whole device. */
  journal?: Journal;
  onProgress?: (done: number, total: number) => void;
}

export type CaptureResult =
  { changed: true; state: StateRow } | { changed: false; latest: StateRow };

/**
 * At most this many stored blocks go into the catalog during the scan (see Catalog.beginState);
 * the rest are inserted with the state. It bounds the catalog pages held dirty in memory (each
 * row may dirty a page of its own) below the catalog's page cache.
 */
const MAX_EARLY_BLOBS = 4096;

/**
 * Ends the current interval of a device primary: reads the candidate blocks (all, or the
 * journal's), keeps those whose content differs from the last state, stores the ones the archive
 * does not hold yet, and commits the consolidated update before recording it in the catalog.
 * With no change, nothing is written and no state is recorded.
 */
export async function captureInterval(
  archive: Archive,
  options: CaptureOptions,
): Promise<CaptureResult> {
  const latest = archive.catalog.latestState();
  if (!latest) throw new TidemarkError('archive.corrupt', 'the archive has no baseline state');
  const rotation = options.journal?.rotate();
  try {
    const result = await capture(archive, latest, options, rotation?.blocks);
    rotation?.settle(true);
    return result;
  } catch (err) {
    rotation?.settle(false);
    throw err;
  }
}

/** The baseline: state 0, every block of the primary. */
export async function captureBaseline(
  archive: Archive,
  clock: Clock,
  onProgress?: (done: number, total: number) => void,
): Promise<StateRow> {
  const result = await capture(
    archive,
    null,
    onProgress ? { clock, onProgress } : { clock },
    undefined,
  );
  if (!result.changed) throw new TidemarkError('internal', 'baseline recorded nothing');
  return result.state;
}

async function capture(
  archive: Archive,
  latest: StateRow | null,
  options: CaptureOptions,
  candidates: number[] | undefined,
): Promise<CaptureResult> {
  const { manifest } = archive;
  const device = await PrimaryDevice.open(manifest.primary.path);
  // Started now, so that the worker's start-up overlaps loading the last state's map and the
  // first reads instead of holding up the first changed chunk.
  const compressor = new BlockCompressor(CHUNK_BYTES, Math.ceil(CHUNK_BYTES / manifest.blockSize));
  compressor.start();
  try {
    if (device.size !== manifest.primary.size) {
      throw new TidemarkError(
        'primary.size-changed',
        `${device.path} is now ${device.size} bytes but was ${manifest.primary.size} when the archive was made; make a new archive for it`,
      );
    }
    for (let attempt = 0; ; attempt++) {
      const time = options.clock.now();
      const grade = gradeSource(device);
      const before = await device.restat();
      // The last state's map is updated in place (one map in memory, 40 B a block); a retry
      // loads it again.
      const previous = latest ? await loadStateMap(archive, latest.id) : null;
      const scan = await scanInto(
        archive,
        device,
        compressor,
        previous,
        latest,
        candidates,
        options,
      );
      try {
        const after = await device.restat();
        const wrote = after.mtimeMs !== before.mtimeMs || after.size !== before.size;
        if (wrote && attempt < MAX_RETRIES) {
          await abandon(scan);
          continue;
        }
        if (wrote) grade.consistency = 'none';
        if (wrote) grade.reason = 'the primary was written while it was read, on every try';
        return await commit(archive, scan, latest, time, grade);
      } catch (err) {
        // The catalog must not stay inside the pending state's transaction (the app keeps it open).
        await abandon(scan);
        throw err;
      }
    }
  } finally {
    stopReadAhead(device.path);
    await compressor.close();
    await device.close();
  }
}

interface ScanResult {
  map: StateMap;
  changedBlocks: number;
  /** Blocks whose hash changed, ascending: what the map cache must rewrite. */
  touched: number[];
  scanHashesChanged: boolean;
  writer: UpdateWriter | null;
  /** The catalog rows of the update, from its first stored block until commit or abandon. */
  pending: PendingState | null;
  /** Stored blocks not added to `pending` yet. */
  blobs: NewBlob[];
  earlyBlobs: number;
}

/** Drops what a scan wrote: the update and its uncommitted catalog rows. */
async function abandon(scan: ScanResult): Promise<void> {
  try {
    scan.pending?.rollback();
  } catch {
    // The error that led here is the one to report; closing the catalog rolls back as well.
  }
  await scan.writer?.abort();
}

async function scanInto(
  archive: Archive,
  device: PrimaryDevice,
  compressor: BlockCompressor,
  previous: StateMap | null,
  latest: StateRow | null,
  candidates: number[] | undefined,
  options: CaptureOptions,
): Promise<ScanResult> {
  const { blockSize, primary } = archive.manifest;
  const map = previous ?? new StateMap(primary.size, blockSize);
  const stateId = latest ? latest.id + 1 : 0;
  const result: ScanResult = {
    map,
    changedBlocks: 0,
    touched: [],
    scanHashesChanged: false,
    writer: null,
    pending: null,
    blobs: [],
    earlyBlobs: 0,
  };
  const storedHere = new Set<string>();
  const scanHasher = new ScanHasher();
  const perGroup = map.blocksPerScanGroup;
  const runs = [
    ...(candidates
      ? runsOf(candidates, blockSize)
      : wholeDevice(map.blockCount, blockSize, map.blocksPerScanGroup)),
  ];
  const totalBlocks = candidates ? candidates.length : map.blockCount;
  const pending: Array<{ index: number; hash: Buffer; data: Buffer | null }> = [];
  let done = 0;

  // Compares one block with the last state by its content hash; records it if it changed.
  const compareBlock = (buffer: Buffer, at: number, index: number): void => {
    const length = map.blockLength(index);
    const data = buffer.subarray(at, at + length);
    const zero = isZero(data);
    if (zero && previous?.isZeroAt(index)) return;
    const hash = zero ? zeroHash(length) : hashBlock(data);
    if (previous?.equalsAt(index, hash)) return;
    if (previous) result.touched.push(index);
    map.set(index, hash);
    result.changedBlocks++;
    pending.push({ index, hash, data: zero ? null : data });
  };

  const processChunk = async (
    buffer: Buffer,
    firstBlock: number,
    blocks: number,
  ): Promise<void> => {
    const aligned =
      firstBlock % perGroup === 0 &&
      (blocks % perGroup === 0 || firstBlock + blocks === map.blockCount);
    if (!candidates && aligned) {
      // A whole scan: one xxh3 per group of blocks tells whether any of them may have changed.
      for (let g = 0; g < blocks; g += perGroup) {
        const first = firstBlock + g;
        const count = Math.min(perGroup, firstBlock + blocks - first);
        const data = buffer.subarray(
          g * blockSize,
          g * blockSize + (count - 1) * blockSize + map.blockLength(first + count - 1),
        );
        const group = first / perGroup;
        if (isZero(data)) {
          map.scanHashes[group] = UNKNOWN_SCAN_HASH;
          if (previous && previous.allZero(first, count)) continue;
        } else {
          const quick = scanHasher.hash(data);
          if (previous && quick !== UNKNOWN_SCAN_HASH && quick === map.scanHashes[group]) continue;
          map.scanHashes[group] = quick;
        }
        result.scanHashesChanged = true;
        for (let b = 0; b < count; b++) compareBlock(buffer, (g + b) * blockSize, first + b);
      }
    } else {
      for (let i = 0; i < blocks; i++) {
        const before = result.changedBlocks;
        compareBlock(buffer, i * blockSize, firstBlock + i);
        // The group's scan hash no longer describes its content: forget it.
        if (result.changedBlocks !== before) {
          map.scanHashes[Math.floor((firstBlock + i) / perGroup)] = UNKNOWN_SCAN_HASH;
          result.scanHashesChanged = true;
        }
      }
    }
    await storePending();
    done += blocks;
    options.onProgress?.(done, totalBlocks);
  };

  // Blocks of one chunk are deduplicated with a single catalog query and compressed on the
  // compressor's thread while the next chunks are read and hashed; chunks are written in order.
  // The scan waits only until a chunk's new blocks are copied out of its read buffer (the
  // compressor's two slots bound how far it runs ahead of the writing).
  let writing: Promise<void> = Promise.resolve();
  let writeFailure: { error: unknown } | null = null;
  const storePending = async (): Promise<void> => {
    if (writeFailure) throw writeFailure.error;
    if (pending.length === 0) return;
    const known = archive.catalog.findBlobs(pending.filter((p) => p.data).map((p) => p.hash));
    const writer = (result.writer ??= await UpdateWriter.create(
      archive.store,
      updateName(stateId),
      blockSize,
    ));
    result.pending ??= archive.catalog.beginState();
    const toStore: Buffer[] = [];
    const storeHashes: Buffer[] = [];
    const entries: Array<{ index: number; hash: Buffer }> = [];
    for (const { index, hash, data } of pending) {
      const key = hash.toString('latin1');
      if (data && !known.has(hash.toString('hex')) && !storedHere.has(key)) {
        storedHere.add(key);
        toStore.push(data);
        storeHashes.push(hash);
      }
      entries.push({ index, hash });
    }
    pending.length = 0;
    const submitted = toStore.length > 0 ? await compressor.submit(toStore) : null;
    // Awaited only after the chunks before it are written: until then, a failure is not unhandled.
    submitted?.batch.catch(() => undefined);
    const previous = writing;
    writing = (async () => {
      try {
        await previous;
      } catch (err) {
        // Settles only after every earlier chunk did; this batch's slot goes back when it is done.
        submitted?.batch.then(
          (b) => b.release(),
          () => undefined,
        );
        throw err;
      }
      const batch = submitted ? await submitted.batch : null;
      const blobs = result.earlyBlobs < MAX_EARLY_BLOBS ? [] : result.blobs;
      try {
        for (let i = 0; i < storeHashes.length; i++) {
          const hash = storeHashes[i] as Buffer;
          const b = batch as CompressedBatch;
          const data = toStore[i] as Buffer;
          const stored = await writer.addStoredBlock(hash, data.length, b.codec(i), b.bytes(i));
          blobs.push({ hash, ...stored });
        }
      } finally {
        batch?.release();
      }
      if (blobs !== result.blobs) {
        // Inserted while the next chunks are read, not after the update is durable; they stay
        // uncommitted until then (commit below).
        result.pending?.addBlobs(updateName(stateId), blobs);
        result.earlyBlobs += blobs.length;
      }
      for (const { index, hash } of entries) await writer.addMapEntry(index, hash);
    })();
    // Seen by the next chunk or at the end; this also keeps Node from calling it unhandled.
    writing.catch((error: unknown) => {
      writeFailure ??= { error };
    });
  };

  // Dedup lookups hit random catalog pages: warm the file while the primary is read.
  const warming = previous ? archive.catalog.prefetch() : Promise.resolve();
  stopReadAhead(device.path);
  try {
    await readRuns(device, runs, blockSize, processChunk);
    await writing;
  } catch (err) {
    await writing.catch(() => undefined);
    await abandon(result);
    throw err;
  } finally {
    await warming;
  }
  return result;
}

async function commit(
  archive: Archive,
  scan: ScanResult,
  latest: StateRow | null,
  time: Date,
  grade: { consistency: Consistency; reason?: string },
): Promise<CaptureResult> {
  if (scan.changedBlocks === 0 || !scan.writer) {
    await abandon(scan);
    if (!latest) throw new TidemarkError('internal', 'no baseline');
    // Keep what this scan learnt (after a catalog rebuild the scan hashes start unknown).
    if (scan.scanHashesChanged)
      archive.mapCache.save(scan.map, latest.id, { fromStateId: latest.id, blocks: scan.touched });
    return { changed: false, latest };
  }
  const { manifest } = archive;
  const stateId = latest ? latest.id + 1 : 0;
  const stateHash = scan.map.stateHash();
  const meta: UpdateMeta = {
    format: FORMAT_VERSION,
    archiveId: manifest.archiveId,
    stateId,
    parentStateId: latest ? latest.id : null,
    time: time.toISOString(),
    blockSize: manifest.blockSize,
    primarySize: manifest.primary.size,
    changedBlocks: scan.changedBlocks,
    storedBlocks: scan.writer.storedBlocks,
    stateHash,
    consistency: grade.consistency,
    ...(grade.reason ? { consistencyReason: grade.reason } : {}),
  };
  // A failure from here on is abandoned by the caller (capture), which wraps the whole commit.
  const size = await scan.writer.finish(meta);
  const state: StateRow = {
    id: stateId,
    parent: meta.parentStateId,
    time: meta.time,
    timeMs: time.getTime(),
    update: updateName(stateId),
    changedBlocks: scan.changedBlocks,
    storedBytes: size,
    stateHash,
    consistency: grade.consistency,
    ...(grade.reason ? { consistencyReason: grade.reason } : {}),
  };
  try {
    // Only now that the update is durable: a catalog never names blocks that a crash could lose.
    if (scan.pending) scan.pending.commit(state, scan.blobs);
    else archive.catalog.recordState(state, scan.blobs);
  } catch (err) {
    // The update is durable but the catalog could not record it (the disk filled up under the
    // catalog's journal). The snapshot is reported as failed, so it must not leave a state that
    // readers would find anyway: the update goes (nothing refers to it yet), and the blocks are
    // still dirty on the primary for the next snapshot. If it cannot go, the next writer indexes
    // it as after a crash.
    await archive.store.delete(state.update).catch(() => undefined);
    throw err;
  }
  archive.mapCache.save(
    scan.map,
    stateId,
    latest ? { fromStateId: latest.id, blocks: scan.touched } : undefined,
  );
  return { changed: true, state };
}

/** A run of contiguous blocks to read: [first, first + count). */
type Run = [first: number, count: number];

/** Chunks of whole scan groups, so each group is hashed from one buffer. */
function* wholeDevice(blockCount: number, blockSize: number, perGroup: number): Generator<Run> {
  const perChunk = Math.max(1, Math.floor(CHUNK_BYTES / (blockSize * perGroup))) * perGroup;
  for (let first = 0; first < blockCount; first += perChunk)
    yield [first, Math.min(perChunk, blockCount - first)];
}

function* runsOf(sorted: number[], blockSize: number): Generator<Run> {
  const perChunk = Math.max(1, Math.floor(CHUNK_BYTES / blockSize));
  let i = 0;
  while (i < sorted.length) {
    const first = sorted[i] as number;
    let count = 1;
    while (i + count < sorted.length && sorted[i + count] === first + count && count < perChunk)
      count++;
    yield [first, count];
    i += count;
  }
}

/**
 * Reads runs with two buffers: the next run is read (on libuv's thread pool) while the current
 * one is hashed and stored, so scanning runs at the speed of the slower of the two.
 */
async function readRuns(
  device: PrimaryDevice,
  runs: Run[],
  blockSize: number,
  process: (buffer: Buffer, firstBlock: number, blocks: number) => Promise<void>,
): Promise<void> {
  let chunkBytes = blockSize;
  for (const [, count] of runs) chunkBytes = Math.max(chunkBytes, count * blockSize);
  const buffers = [alignedBuffer(chunkBytes), alignedBuffer(chunkBytes)] as const;
  const iterator = runs[Symbol.iterator]();
  const start = (run: Run | undefined, buffer: Buffer): Promise<Run> | null => {
    if (!run) return null;
    const [first, count] = run;
    const offset = first * blockSize;
    const length = Math.min(count * blockSize, device.size - offset);
    return device.read(buffer, length, offset).then(() => run);
  };
  let which = 0;
  let reading = start(iterator.next().value ?? undefined, buffers[0]);
  while (reading) {
    const run = await reading;
    const next = iterator.next();
    reading = start(next.done ? undefined : next.value, buffers[1 - which] as Buffer);
    try {
      await process(buffers[which] as Buffer, run[0], run[1]);
    } catch (err) {
      await reading?.catch(() => undefined);
      throw err;
    }
    which = 1 - which;
  }
}
