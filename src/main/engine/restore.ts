import { randomBytes } from 'node:crypto';
import { alignedBuffer } from './aligned-buffer.js';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import * as path from 'node:path';
import { TidemarkError } from '../../shared/errors.js';
import type { RestoreReport } from '../../shared/states.js';
import { isProcessAlive, type Archive } from './archive.js';
import { BlockInflater } from './block-inflater.js';
import { HASH_BYTES, hashBlock, isZero, zeroHash } from './block-hash.js';
import type { BlobLocation, StateRow } from './catalog.js';
import { blockDeviceBytes, describeDevice, deviceNumbers } from './device/primary-device.js';
import { mountPointOf } from './device/quiescence.js';
import { checkFileHeader, HEADER_BYTES, RECORD_HEADER_BYTES } from './format/update-format.js';
import { loadStateMap } from './state-loader.js';
import type { StateMap } from './state-map.js';
import { RestoreReadBack } from './restore-read-back.js';
import { SyncBehind } from './sync-behind.js';
import { syncDirectory, TEMP_MARK } from './storage/folder-store.js';

/** Blocks looked up and fetched together: 32 MiB worth, at least 64. */
const BATCH_BYTES = 32 << 20;
const READ_RANGE = 8 << 20;
const MAX_GAP = 1 << 20;

export type StateSelector = { stateId: number } | { at: Date };

export interface RestoreOptions {
  /** Write only the blocks where the target differs from the state (it is read first). */
  rollback?: boolean;
  /** Overwrite an existing target completely. */
  force?: boolean;
  onProgress?: (done: number, total: number) => void;
  /**
   * Where a block the archive does not hold may come from (the local cache restores from the
   * primary itself, block by block): reads block `index` into `into` and says whether its
   * content has the wanted hash. Used only for blocks the archive lacks.
   */
  blockFallback?: (index: number, hash: Buffer, into: Buffer) => Promise<boolean>;
}

export function resolveState(archive: Archive, selector: StateSelector): StateRow {
  if ('stateId' in selector) {
    const row = archive.catalog.state(selector.stateId);
    if (!row)
      throw new TidemarkError(
        'state.not-found',
        `state ${selector.stateId} does not exist in this archive`,
      );
    return row;
  }
  const row = archive.catalog.stateAt(selector.at.getTime());
  if (!row)
    throw new TidemarkError(
      'state.not-found',
      `no state at or before ${selector.at.toISOString()}`,
    );
  return row;
}

/**
 * Restores a state onto a file or block device and proves it: the target is read back and its
 * state hash must equal the one recorded for the state before success is reported.
 */
export async function restoreState(
  archive: Archive,
  selector: StateSelector,
  targetPath: string,
  options: RestoreOptions = {},
): Promise<RestoreReport> {
  const state = resolveState(archive, selector);
  const map = await loadStateMap(archive, state.id);
  const target = await openTarget(archive, path.resolve(targetPath), map, options);
  let written = { blocks: 0, bytes: 0 };
  const flusher = new SyncBehind(target.handle);
  const readBack = new RestoreReadBack(target.handle, map);
  try {
    // A target that starts empty gets its size first: the zero blocks it is never given are then
    // holes inside the file, read back as the zeros they stand for.
    if (target.temp || target.wasEmpty) await target.handle.truncate(map.primarySize);
    written = await writeBlocks(archive, map, target, options, { flusher, readBack });
    if (target.type === 'file') await target.handle.truncate(map.primarySize);
    const [, proof] = await Promise.all([flusher.sync(), readBack.finish()]);
    const { stateHash, blockHashes } = proof;
    if (stateHash !== state.stateHash) {
      // A new file was written from blocks whose content hashes were not checked on the way
      // (the read-back checks them all): say whether the archive is damaged, as a checked
      // restore would have.
      if (target.temp) await checkArchiveBlocks(archive, map, blockHashes, options.blockFallback);
      throw new TidemarkError(
        'restore.mismatch',
        `the restored ${target.path} does not match state ${state.id} (state hash differs)`,
      );
    }
    await target.handle.close();
    if (target.temp) await publish(target.temp, target.path);
  } catch (err) {
    await readBack.close();
    await flusher.settle();
    await target.handle.close().catch(() => undefined);
    // A half-written new file is worthless and misleading; an existing target keeps what it got,
    // and for a file that was empty that is nothing.
    if (target.temp) await fsp.rm(target.temp, { force: true });
    if (target.wasEmpty) await fsp.truncate(target.path, 0).catch(() => undefined);
    throw targetError(err, target.path);
  }
  return {
    state: state.id,
    target: target.path,
    rollback: options.rollback === true,
    blocksWritten: written.blocks,
    bytesWritten: written.bytes,
    stateHash: state.stateHash,
    verified: true,
  };
}

interface Target {
  path: string;
  type: 'file' | 'block-device';
  handle: FileHandle;
  /**
   * A new file is written under this temporary name next to `path` and renamed to it only once
   * proven, so a restore killed midway never leaves a plausible but partial file at `path`.
   * Null when an existing file or device is written in place. Started empty: zero blocks need
   * no write.
   */
  temp: string | null;
  /**
   * An existing file of 0 bytes: like a new file its zero blocks need no write (so a state fits
   * where the free-space check said it would), and a failed restore leaves it empty again.
   */
  wasEmpty: boolean;
  /** Bytes of the target that hold earlier content (read and compared in a rollback). */
  existingSize: number;
}

async function openTarget(
  archive: Archive,
  abs: string,
  map: StateMap,
  options: RestoreOptions,
): Promise<Target> {
  const primary = archive.manifest.primary.path;
  // Also beside an existing target: a restore killed right after publishing leaves its temp name.
  await removeDeadTemps(abs);
  const exists = fs.existsSync(abs);
  if (!exists) {
    await checkFreeSpace(path.dirname(abs), map);
    const temp = `${abs}${TEMP_MARK}${process.pid}-${randomBytes(6).toString('hex')}`;
    try {
      return {
        path: abs,
        type: 'file',
        handle: await fsp.open(temp, 'wx+'),
        temp,
        wasEmpty: false,
        existingSize: 0,
      };
    } catch (err) {
      throw targetError(err, abs);
    }
  }
  const { stat, type } = await describeDevice(abs).catch((err: unknown) => {
    throw targetError(err, abs);
  });
  const isPrimary = samePath(abs, primary);
  if (isPrimary && !options.rollback) {
    throw new TidemarkError(
      'restore.target-is-primary',
      `${abs} is the protected primary: add --rollback to roll it back (only differing blocks are written)`,
    );
  }
  const size = type === 'file' ? stat.size : blockDeviceBytes(stat.rdev);
  // A device too small for the state is said first: no flag can make it fit, so suggesting
  // --force or --rollback would only lead to this error one step later.
  if (type === 'block-device' && size < map.primarySize) {
    throw new TidemarkError(
      'restore.target-too-small',
      `${abs} is too small: it holds ${size} bytes, the state needs ${map.primarySize}`,
    );
  }
  if (!options.rollback && !options.force && (type === 'block-device' || stat.size > 0)) {
    throw new TidemarkError(
      'restore.target-exists',
      `${abs} already holds data: use --rollback or --force, or choose a new file`,
    );
  }
  if (type === 'block-device') {
    const { major, minor } = deviceNumbers(stat.rdev);
    const mount = mountPointOf(new Set([`${major}:${minor}`]), { readWriteOnly: false });
    if (mount)
      throw new TidemarkError(
        'restore.target-unwritable',
        `${abs} is mounted at ${mount}: unmount it first`,
      );
  } else if (map.primarySize > size) {
    await checkFreeSpace(path.dirname(abs), map);
  }
  let handle: FileHandle;
  try {
    handle = await fsp.open(abs, 'r+');
  } catch (err) {
    throw targetError(err, abs);
  }
  const wasEmpty = type === 'file' && stat.size === 0;
  return {
    path: abs,
    type,
    handle,
    temp: null,
    wasEmpty,
    existingSize: options.rollback ? Math.min(size, map.primarySize) : 0,
  };
}

async function writeBlocks(
  archive: Archive,
  map: StateMap,
  target: Target,
  options: RestoreOptions,
  behind: { flusher: SyncBehind; readBack: RestoreReadBack },
): Promise<{ blocks: number; bytes: number }> {
  const { blockSize } = map;
  // Into a new file, blocks are written without their BLAKE3 check: the read-back proves them all
  // before the file gets its name, and a damaged one is then found again (checkArchiveBlocks).
  // A target written in place is never given a block whose content was not checked first.
  const inflater = new BlockInflater(READ_RANGE, blockSize, target.temp === null);
  const checkedUpdates = new Set<string>();
  const batch = Math.max(64, Math.floor(BATCH_BYTES / blockSize));
  // Each batch of the target is assembled in target order in one of two images, then written as
  // one write per run of wanted blocks while the next batch is fetched into the other. Blocks
  // arrive in archive order (scattered over the batch in an incremental state), so writing them
  // as they came took one write, and one wait for it, per block.
  const images = [alignedBuffer(batch * blockSize), alignedBuffer(batch * blockSize)];
  const filledBy = [new Uint8Array(batch), new Uint8Array(batch)];
  const writingBy: Array<Promise<void>> = [Promise.resolve(), Promise.resolve()];
  // The batch being fetched while the next one is planned: its catalog lookups then run while
  // the block worker still decodes this one, instead of between batches with the worker idle.
  let previous: { fetching: Promise<void>; write: () => Promise<void>; which: number } | null =
    null;
  const started: Array<Promise<void>> = [];
  let blocks = 0;
  let bytes = 0;
  const finishPrevious = async (): Promise<void> => {
    if (!previous) return;
    await previous.fetching;
    const writing = previous.write();
    writing.catch(() => undefined);
    started.push(writing);
    writingBy[previous.which] = writing;
    previous = null;
  };

  try {
    for (let first = 0, which = 0; first < map.blockCount; first += batch, which = 1 - which) {
      const last = Math.min(first + batch, map.blockCount);
      const image = images[which] as Buffer;
      const filled = filledBy[which] as Uint8Array;
      // This image is free again only once the writes of the batch before last are done.
      await writingBy[which];
      const wanted: number[] = [];
      const batchStart = first * blockSize;
      const existing = Math.max(0, Math.min(last * blockSize, target.existingSize) - batchStart);
      // Rollback: read what the target holds for this batch at once; padding past its end is zero.
      if (existing > 0)
        await readFully(
          target.handle,
          image.subarray(0, (last - first) * blockSize),
          batchStart,
          existing,
        );
      for (let i = first; i < last; i++) {
        const offset = i * blockSize;
        const length = map.blockLength(i);
        if (offset < target.existingSize) {
          // The block stays if the target already holds this content.
          const have = image.subarray(offset - batchStart, offset - batchStart + length);
          if (map.equalsAt(i, hashOf(have))) continue;
        } else if ((target.temp || target.wasEmpty) && map.isZeroAt(i)) {
          continue;
        }
        wanted.push(i);
      }
      filled.fill(0);
      const place = (offset: number, data: Buffer): Promise<void> => {
        data.copy(image, offset - batchStart);
        filled[(offset - batchStart) / blockSize] = 1;
        blocks++;
        bytes += data.length;
        return Promise.resolve();
      };
      const fetching = fetchBlocks(
        archive,
        map,
        wanted,
        inflater,
        place,
        checkedUpdates,
        options.blockFallback,
      );
      fetching.catch(() => undefined);
      started.push(fetching);
      await finishPrevious();
      previous = {
        fetching,
        which,
        write: async () => {
          await writeRuns(target.handle, image, filled, last - first, batchStart, map, first);
          // Behind the writes: the disk gets this batch now, and its read-back (the proof) runs
          // while later batches are decoded.
          behind.flusher.kick();
          void behind.readBack.range(first, last - first);
        },
      };
      options.onProgress?.(first, map.blockCount);
    }
    await finishPrevious();
    await Promise.all(writingBy);
    options.onProgress?.(map.blockCount, map.blockCount);
  } finally {
    // Nothing may still use the worker's memory or the target when the caller goes on.
    await Promise.allSettled(started);
    await inflater.close();
  }
  return { blocks, bytes };
}

/** Writes each run of filled blocks of a batch image with one write, all runs at once. */
async function writeRuns(
  handle: FileHandle,
  image: Buffer,
  filled: Uint8Array,
  count: number,
  batchStart: number,
  map: StateMap,
  firstBlock: number,
): Promise<void> {
  const writes: Array<Promise<void>> = [];
  for (let i = 0; i < count;) {
    if (!filled[i]) {
      i++;
      continue;
    }
    let j = i + 1;
    while (j < count && filled[j]) j++;
    const from = i * map.blockSize;
    const to = (j - 1) * map.blockSize + map.blockLength(firstBlock + j - 1);
    writes.push(writeFully(handle, image.subarray(from, to), batchStart + from));
    i = j;
  }
  await Promise.all(writes);
}

/**
 * Gives the proven temporary file its final name without replacing a file that appeared there
 * meanwhile: link() is an atomic put-if-absent; FAT and exFAT disks have no hard links, so there
 * it is check-then-rename.
 */
async function publish(temp: string, final: string): Promise<void> {
  let linked = false;
  try {
    await fsp.link(temp, final);
    linked = true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST' && !fs.existsSync(final))
      await fsp.rename(temp, final);
    else
      throw new TidemarkError(
        'restore.target-exists',
        `${final} appeared during the restore and was left as it is`,
      );
  }
  if (linked) await fsp.rm(temp, { force: true });
  await syncDirectory(path.dirname(final));
}

/** Removes what restores to `target` killed earlier left (their process is gone). */
async function removeDeadTemps(target: string): Promise<void> {
  const prefix = `${path.basename(target)}${TEMP_MARK}`;
  let names: string[];
  try {
    names = await fsp.readdir(path.dirname(target));
  } catch {
    return;
  }
  for (const name of names) {
    const m = name.startsWith(prefix)
      ? /^(\d+)-[0-9a-f]{12}$/.exec(name.slice(prefix.length))
      : null;
    if (m && !isProcessAlive(Number(m[1]))) {
      await fsp.rm(path.join(path.dirname(target), name), { force: true }).catch(() => undefined);
    }
  }
}

/**
 * Emits the content of `blocks` (ascending): zero blocks from zeros, the others read from the
 * archive in ranges that cover consecutive records of one update (a baseline restores with
 * large sequential reads), each decompressed and checked against its content hash.
 */
async function fetchBlocks(
  archive: Archive,
  map: StateMap,
  blocks: number[],
  inflater: BlockInflater,
  emit: (offset: number, data: Buffer) => Promise<void>,
  checkedUpdates: Set<string>,
  fallback?: RestoreOptions['blockFallback'],
): Promise<void> {
  const { blockSize } = map;
  const block = Buffer.allocUnsafe(blockSize);
  const nonZero = blocks.filter((i) => !map.isZeroAt(i));
  const locations = archive.catalog.findBlobs(nonZero.map((i) => Buffer.from(map.hashAt(i))));
  const jobs: Array<{ index: number; where: BlobLocation }> = [];
  for (const index of nonZero) {
    const where = locations.get(map.hashAt(index).toString('hex'));
    if (where) {
      jobs.push({ index, where });
      continue;
    }
    const into = block.subarray(0, map.blockLength(index));
    if (!fallback || !(await fallback(index, map.hashAt(index), into)))
      throw new TidemarkError(
        'archive.corrupt',
        `a block of the state is missing from the archive (block ${index}, content ${map.hashAt(index).toString('hex')})`,
      );
    await emit(index * blockSize, into);
  }
  jobs.sort((a, b) =>
    a.where.update === b.where.update
      ? a.where.offset - b.where.offset
      : a.where.update < b.where.update
        ? -1
        : 1,
  );
  for (const index of blocks) {
    if (!map.isZeroAt(index)) continue;
    block.fill(0, 0, map.blockLength(index));
    await emit(index * blockSize, block.subarray(0, map.blockLength(index)));
  }
  // Each range is read into shared memory and decoded on the block worker while the next range
  // is read; ranges are emitted in the order they were read.
  let emitting: Promise<void> = Promise.resolve();
  let j = 0;
  while (j < jobs.length) {
    const first = jobs[j] as (typeof jobs)[number];
    const start = first.where.offset;
    let end = start + RECORD_HEADER_BYTES + first.where.storedLength;
    let raw = map.blockLength(first.index);
    let k = j + 1;
    for (; k < jobs.length && k - j < inflater.maxBlocks; k++) {
      const { where, index } = jobs[k] as (typeof jobs)[number];
      const next = where.offset + RECORD_HEADER_BYTES + where.storedLength;
      // Reading a small gap of unwanted records costs less than another read call.
      if (
        where.update !== first.where.update ||
        where.offset - end > MAX_GAP ||
        next - start > READ_RANGE ||
        raw + map.blockLength(index) > inflater.maxOutput
      )
        break;
      end = Math.max(end, next);
      raw += map.blockLength(index);
    }
    if (!checkedUpdates.has(first.where.update)) {
      // The catalog says where a block lies, not how its update is laid out: an update written
      // by a newer Tidemark is refused by name ("update Tidemark"), not read as if it were ours.
      checkFileHeader(
        await archive.store.read(first.where.update, 0, HEADER_BYTES),
        first.where.update,
      );
      checkedUpdates.add(first.where.update);
    }
    const batch = await inflater.batch(end - start);
    const range = jobs.slice(j, k);
    try {
      await archive.store.read(first.where.update, start, end - start, batch.input);
      for (const { index, where } of range)
        batch.add(
          where.offset - start,
          where.storedLength,
          map.blockLength(index),
          where.codec,
          map.hashAt(index),
        );
    } catch (err) {
      batch.release();
      throw err;
    }
    const decoded = batch.run();
    const previous = emitting;
    emitting = (async () => {
      try {
        await previous;
        await decoded;
        for (let i = 0; i < range.length; i++) {
          const { index, where } = range[i] as (typeof range)[number];
          if (!batch.ok(i))
            throw new TidemarkError(
              'archive.corrupt',
              `${where.update}: damaged block at byte ${where.offset} (run verify)`,
            );
          await emit(index * blockSize, batch.output(i));
        }
      } finally {
        batch.release();
      }
    })();
    // Awaited below or by the next range; this only keeps Node from calling it unhandled meanwhile.
    emitting.catch(() => undefined);
    await previous;
    j = k;
  }
  await emitting;
}

function hashOf(data: Buffer): Buffer {
  return isZero(data) ? zeroHash(data.length) : hashBlock(data);
}

/**
 * Fetches, with their content hashes checked, the blocks whose read-back differs from the state:
 * throws archive.corrupt naming the update if the archive holds a damaged one.
 */
async function checkArchiveBlocks(
  archive: Archive,
  map: StateMap,
  blockHashes: Buffer,
  fallback: RestoreOptions['blockFallback'],
): Promise<void> {
  const differing: number[] = [];
  for (let i = 0; i < map.blockCount; i++) {
    const have = blockHashes.subarray(i * HASH_BYTES, (i + 1) * HASH_BYTES);
    if (!map.equalsAt(i, have)) differing.push(i);
  }
  const inflater = new BlockInflater(READ_RANGE, map.blockSize, true);
  try {
    await fetchBlocks(
      archive,
      map,
      differing,
      inflater,
      () => Promise.resolve(),
      new Set(),
      fallback,
    );
  } finally {
    await inflater.close();
  }
}

async function readFully(
  handle: FileHandle,
  into: Buffer,
  position: number,
  length: number,
): Promise<void> {
  let done = 0;
  while (done < length) {
    const { bytesRead } = await handle.read(into, done, length - done, position + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  into.fill(0, done, into.length);
}

async function writeFully(handle: FileHandle, data: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < data.length) {
    const { bytesWritten } = await handle.write(data, done, data.length - done, position + done);
    done += bytesWritten;
  }
}

async function checkFreeSpace(dir: string, map: StateMap): Promise<void> {
  let needed = 0;
  for (let i = 0; i < map.blockCount; i++) if (!map.isZeroAt(i)) needed += map.blockLength(i);
  let free: number;
  try {
    const s = await fsp.statfs(dir);
    free = s.bavail * s.bsize;
  } catch (err) {
    throw targetError(err, dir);
  }
  if (free < needed) {
    throw new TidemarkError(
      'restore.target-too-small',
      `not enough free space in ${dir}: the state needs ${needed} bytes, ${free} are free`,
    );
  }
}

function samePath(a: string, b: string): boolean {
  try {
    return fs.realpathSync(a) === fs.realpathSync(b);
  } catch {
    return path.resolve(a) === path.resolve(b);
  }
}

function targetError(err: unknown, where: string): TidemarkError {
  if (err instanceof TidemarkError) return err;
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOSPC' || code === 'EFBIG') {
    return new TidemarkError(
      'restore.target-too-small',
      `${where}: no space left for the restore`,
      { cause: err },
    );
  }
  return new TidemarkError(
    'restore.target-unwritable',
    `cannot write ${where}: ${(err as Error).message}`,
    { cause: err },
  );
}
