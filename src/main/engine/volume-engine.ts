/**
 * Volume mode: a folder tree as the primary. The facade the CLI (and later the app) calls; the
 * parts live in ./volume/.
 */
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { TidemarkError } from '../../shared/errors.js';
import type { PruneReport } from '../../shared/retention.js';
import type {
  DiffReport,
  FileVersion,
  StateInfo,
  VerifyReport,
  VolumeRestoreReport,
} from '../../shared/states.js';
import { Archive, ArchiveLock } from './archive.js';
import { removeArchiveFiles } from './archive-dir.js';
import { encryptionForInit } from './encryption/unlock.js';
import type { StateRow } from './catalog.js';
import { systemClock, type Clock } from './clock.js';
import { MANIFEST_NAME, newManifest } from './format/archive-manifest.js';
import { pinnedStates } from './retention/pins.js';
import { pruneArchive } from './retention/prune.js';
import type { RetentionSettings } from './retention/retention-policy.js';
import { withSpaceGuard, type MinFree } from './retention/space-guard.js';
import { UpdateReader } from './format/update-reader.js';
import type { StateSelector } from './restore.js';
import {
  archiveMayExist,
  archiveTarget,
  prepareTarget,
  removeRemoteObjects,
} from './archive-target.js';
import type { VerifyOptions } from './verify.js';
import {
  captureVolumePoint,
  isMountPoint,
  type VolumeCaptureResult,
} from './volume/capture-volume.js';
import {
  archiveInsideTree,
  DEFAULT_EXCLUDES,
  Excludes,
  SNAPSHOT_EXCLUDE,
} from './volume/excludes.js';
import { fileHistory, diffStates } from './volume/history.js';
import { PathJournal } from './volume/path-journal.js';
import type { ProgressSink } from './volume/scan-progress.js';
import { restoreVolumeState, type VolumeRestoreOptions } from './volume/restore-volume.js';
import { loadVolumeTree } from './volume/tree-loader.js';
import { emptySuspects } from './volume/tree-scanner.js';
import type { TreeWatcher } from './volume/tree-watcher.js';
import { loadScanHashes, saveScanHashes, SCAN_HASHES_NAME } from './volume/scan-hash-cache.js';
import { verifyVolumeArchive } from './volume/verify-volume.js';
import { isVolumeArchive, isVolumeManifest } from './archive-kind.js';

export { isVolumeArchive, isVolumeManifest };
import { VolumeTree } from './volume/volume-tree.js';

/**
 * Blocks of files. Fixed-size blocks keep a rewrite inside a big file to the blocks it touches;
 * 64 KiB keeps the catalog and the per-block work small for trees of many files.
 */
export const VOLUME_BLOCK_SIZE = 64 * 1024;
const JOURNAL_NAME = 'volume.journal';

export interface VolumeInitOptions {
  excludes?: string[];
  /** Leave the default excludes out (caches, trash). */
  noDefaultExcludes?: boolean;
  preHook?: string;
  postHook?: string;
  blockSize?: number;
  clock?: Clock;
  /** Read from btrfs snapshots where the tree lies on btrfs (default true). */
  useSnapshots?: boolean;
  /** Bytes of files read so far, of a pre-count of the tree; throwing from it cancels. */
  onProgress?: ProgressSink;
}

/** Creates the archive of folder `tree` in `archiveDir` and records its baseline, state 0. */
export async function initVolumeArchive(
  tree: string,
  archiveDir: string,
  options: VolumeInitOptions = {},
): Promise<VolumeCaptureResult & { changed: true }> {
  const root = fs.realpathSync(path.resolve(tree));
  const target = await archiveTarget(archiveDir);
  const dir = target.localDir;
  if (!target.remote && (dir === root || root.startsWith(dir + path.sep)))
    throw new TidemarkError('usage', `the archive ${dir} cannot hold the folder it protects`);
  const blockSize = options.blockSize ?? VOLUME_BLOCK_SIZE;
  if (!Number.isInteger(blockSize) || blockSize < 4096 || blockSize > 16 << 20 || blockSize % 4096)
    throw new TidemarkError(
      'usage',
      'block size must be a multiple of 4096 between 4096 and 16777216 bytes',
    );
  const archiveId = randomUUID();
  const encryption = await encryptionForInit(target.remote, archiveId, target.name);
  const created = await prepareTarget(target, root, '`tidemark snapshot` or `tidemark watch`');
  const lock = await ArchiveLock.take(dir);
  let archive: Archive | null = null;
  const store = target.openStore();
  try {
    const excludes = [
      ...(options.noDefaultExcludes ? [] : DEFAULT_EXCLUDES),
      ...(options.excludes ?? []),
    ];
    const inside = target.remote ? null : archiveInsideTree(root, fs.realpathSync(dir));
    if (inside) excludes.push(inside);
    // The btrfs snapshot a point reads from may lie inside the tree: never part of it.
    if (!excludes.includes(SNAPSHOT_EXCLUDE)) excludes.push(SNAPSHOT_EXCLUDE);
    const manifest = newManifest({
      archiveId,
      createdAt: (options.clock ?? systemClock).now().toISOString(),
      blockSize,
      primary: { kind: 'volume', path: root, size: 0 },
      ...(encryption ? { encryption } : {}),
      volume: {
        excludes,
        ...(options.preHook ? { preHook: options.preHook } : {}),
        ...(options.postHook ? { postHook: options.postHook } : {}),
        ...(isMountPoint(root) ? { mountPoint: true } : {}),
      },
    });
    const writer = await store.create(MANIFEST_NAME);
    await writer.write(Buffer.from(JSON.stringify(manifest, null, 2) + '\n'));
    await writer.commit();
    archive = await Archive.adopt(dir, lock, target);
    const tree = new VolumeTree();
    const result = await captureVolumePoint(archive, null, {
      clock: options.clock ?? systemClock,
      tree,
      ...(options.useSnapshots === false ? { useSnapshots: false } : {}),
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
    });
    if (!result.changed) throw new TidemarkError('internal', 'baseline recorded nothing');
    keepScanHashes(archive, tree);
    await archive.close();
    return result;
  } catch (err) {
    await archive?.close().catch(() => undefined);
    await removeRemoteObjects(target).catch(() => undefined);
    await removeArchiveFiles(dir, [JOURNAL_NAME, SCAN_HASHES_NAME]);
    await lock.release();
    if (created) await fsp.rmdir(dir).catch(() => undefined);
    throw err;
  } finally {
    await store.close();
  }
}

export interface VolumeSnapshotOptions {
  clock?: Clock;
  useSnapshots?: boolean;
  /** Space guard threshold; stored in the archive, which uses the stored one when not given. */
  minFree?: MinFree;
  /** Bytes of files looked at, of the last state's total; throwing from it cancels. */
  onProgress?: ProgressSink;
  /**
   * False when the caller runs the space guard around this point itself (the local cache does,
   * around shipping too): a guard inside it would act unseen, its report not the caller's.
   */
  spaceGuard?: boolean;
}

/**
 * Ends the interval now without a watcher: the tree is compared with the last state by a
 * metadata rescan (size, mtime, ctime, inode) and only what differs is read.
 */
export async function snapshotVolume(
  archiveDir: string,
  options: VolumeSnapshotOptions = {},
): Promise<VolumeCaptureResult> {
  const archive = await openVolumeWriter(archiveDir);
  try {
    return (await snapshotOpenVolume(archive, options)).result;
  } finally {
    await archive.close();
  }
}

/** `snapshotVolume` on an archive the caller opened for writing; also gives the new state's tree. */
export async function snapshotOpenVolume(
  archive: Archive,
  options: VolumeSnapshotOptions = {},
): Promise<{ result: VolumeCaptureResult; tree: VolumeTree }> {
  const journal = PathJournal.open(path.join(archive.dir, JOURNAL_NAME));
  const rotation = journal.rotate();
  try {
    const latest = archive.catalog.latestState();
    const tree = latest ? await loadTreeOf(archive, latest.id) : await emptyTree();
    const capture = (): Promise<VolumeCaptureResult> =>
      captureVolumePoint(archive, latest ?? null, {
        clock: options.clock ?? systemClock,
        tree,
        ...(options.useSnapshots === false ? { useSnapshots: false } : {}),
        ...(options.onProgress ? { onProgress: options.onProgress } : {}),
      });
    const { result, spaceGuard } =
      options.spaceGuard === false
        ? { result: await capture(), spaceGuard: null }
        : await withSpaceGuard(archive, options.minFree, capture);
    rotation.settle(true);
    keepScanHashes(archive, tree);
    return { result: spaceGuard ? { ...result, spaceGuard } : result, tree };
  } catch (err) {
    rotation.settle(false);
    throw err;
  } finally {
    journal.close();
  }
}

async function emptyTree(): Promise<VolumeTree> {
  return new VolumeTree();
}

/** The tree of a state, with the scan hashes the last process kept for its big files. */
async function loadTreeOf(archive: Archive, stateId: number): Promise<VolumeTree> {
  const tree = await loadVolumeTree(archive, stateId);
  loadScanHashes(path.join(archive.dir, SCAN_HASHES_NAME), tree);
  return tree;
}

/** Keeps the scan hashes of `tree` (the last state's) for the next process; a cache, so best effort. */
function keepScanHashes(archive: Archive, tree: VolumeTree): void {
  try {
    saveScanHashes(path.join(archive.dir, SCAN_HASHES_NAME), tree);
  } catch {
    // Only the next start's first read of a big file is slower without it.
  }
}

export interface WatchOptions {
  everyMs: number;
  /**
   * A point compares the whole tree's metadata again at least this often (default 1 h): the
   * watcher does not see writes through a shared memory map (databases like LMDB write so), nor
   * what it lost when the kernel's queue overflowed, but their mtimes moved.
   */
  rescanEveryMs?: number;
  signal: AbortSignal;
  clock?: Clock;
  useSnapshots?: boolean;
  /** Space guard threshold; stored in the archive, which uses the stored one when not given. */
  minFree?: MinFree;
  /**
   * Retention applied after each point that recorded a state, on the archive the watch holds
   * (so no separate `prune` needs its lock), as of the watch's clock.
   */
  retention?: RetentionSettings;
  /** A point begins (its pre-hook, then the capture). */
  onPointStart?: () => void;
  /** Something the user should know that is not a point's outcome. */
  onNote?: (line: string) => void;
  /** Each point's outcome, or its error (the watch goes on). */
  onPoint: (outcome: WatchPointOutcome) => void;
}

export interface WatchPointOutcome {
  result?: VolumeCaptureResult;
  error?: unknown;
  /** What retention did after the point, when it dropped anything. */
  pruned?: PruneReport;
  /** Retention failed after the point was recorded: the state stands, the watch goes on. */
  pruneError?: unknown;
}

export const DEFAULT_RESCAN_EVERY_MS = 3_600_000;

/**
 * Tracks the tree with the native watcher and ends an interval every `everyMs` at the next
 * consistent point, until `signal` aborts (the point under way finishes first). The first point
 * after start is a full rescan, so changes made while nothing watched are in it.
 */
export async function watchVolume(archiveDir: string, options: WatchOptions): Promise<void> {
  const archive = await openVolumeWriter(archiveDir);
  const journal = PathJournal.open(path.join(archive.dir, JOURNAL_NAME));
  let watcher: TreeWatcher | null = null;
  // The last state's tree, kept from one point to the next (dropped when a point fails).
  let cached: { id: number; tree: VolumeTree } | null = null;
  try {
    const root = archive.manifest.primary.path;
    const excludes = new Excludes(archive.manifest.volume?.excludes ?? []);
    try {
      // Loaded only here: @parcel/watcher's native module cannot be loaded again by a second
      // worker thread of one process, and the app's engine worker (restarted after a crash)
      // never watches.
      const { TreeWatcher } = await import('./volume/tree-watcher.js');
      watcher = await TreeWatcher.start(root, excludes, journal, [archive.dir]);
    } catch (err) {
      // No watcher (the tree is gone for now, or the system's watch limit is reached): every point
      // rescans instead, which costs more but misses nothing.
      options.onNote?.(`no file watcher (${(err as Error).message}): every point rescans the tree`);
    }
    let rescan = true;
    let rescannedAt = performance.now();
    const rescanEveryMs = options.rescanEveryMs ?? DEFAULT_RESCAN_EVERY_MS;
    while (!options.signal.aborted) {
      await sleep(options.everyMs, options.signal);
      if (options.signal.aborted) break;
      if (!watcher || watcher.lost || performance.now() - rescannedAt >= rescanEveryMs)
        rescan = true;
      if (watcher) watcher.lost = false;
      if (!rescan && journal.size === 0) continue;
      options.onPointStart?.();
      // Counted from before the rotation: what arrives after it belongs to this point's rounds.
      watcher?.restartCount();
      const rotation = journal.rotate();
      try {
        const latest = archive.catalog.latestState() ?? null;
        const tree: VolumeTree =
          cached && latest && cached.id === latest.id
            ? cached.tree
            : latest
              ? await loadTreeOf(archive, latest.id)
              : await emptyTree();
        cached = null;
        const guarded = await withSpaceGuard(archive, options.minFree, () =>
          captureVolumePoint(archive, latest, {
            clock: options.clock ?? systemClock,
            tree,
            suspects: rescan ? { ...emptySuspects(), all: true } : rotation.suspects,
            ...(watcher ? { live: watcher } : {}),
            ...(options.useSnapshots === false ? { useSnapshots: false } : {}),
          }),
        );
        const result: VolumeCaptureResult = guarded.spaceGuard
          ? { ...guarded.result, spaceGuard: guarded.spaceGuard }
          : guarded.result;
        rotation.settle(true);
        if (rescan) rescannedAt = performance.now();
        rescan = false;
        const now = result.changed ? result.state : result.latest;
        if (now) cached = { id: now.id, tree };
        let retention: Pick<WatchPointOutcome, 'pruned' | 'pruneError'> = {};
        if (options.retention && result.changed) {
          retention = await retainAfterPoint(archive, options);
          // Retention keeps the newest state (a run before it is collapsed into its update, same
          // id and hash), and the tree holds content hashes, not update names: it stays this
          // state's. Proven rather than assumed, since the next point builds on this tree.
          const newest = archive.catalog.latestState();
          if (cached && (newest?.id !== cached.id || newest.stateHash !== cached.tree.stateHash()))
            cached = null;
        }
        options.onPoint({ result, ...retention });
      } catch (err) {
        rotation.settle(false);
        cached = null;
        options.onPoint({ error: err });
      }
    }
  } finally {
    await watcher?.stop();
    if (cached) keepScanHashes(archive, cached.tree);
    journal.close();
    await archive.close();
  }
}

/** Applies the watch's retention after a recorded point; a failure is reported, never thrown. */
async function retainAfterPoint(
  archive: Archive,
  options: WatchOptions,
): Promise<Pick<WatchPointOutcome, 'pruned' | 'pruneError'>> {
  if (!options.retention) return {};
  try {
    const report = await pruneArchive(archive, {
      now: (options.clock ?? systemClock).now(),
      settings: options.retention,
    });
    return report.dropped > 0 ? { pruned: report } : {};
  } catch (err) {
    return { pruneError: err };
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done);
  });
}

/** The states, with the volume fields read from each update's meta. */
export async function listVolumeStates(archiveDir: string): Promise<StateInfo[]> {
  return withReader(archiveDir, async (archive) => {
    const out: StateInfo[] = [];
    const pins = await pinnedStates(archive.store);
    for (const s of archive.catalog.states())
      out.push({ ...(await volumeStateInfo(archive, s)), pinned: pins.has(s.id) });
    return out;
  });
}

export async function volumeStateInfo(archive: Archive, s: StateRow): Promise<StateInfo> {
  const meta = (await UpdateReader.open(archive.store, s.update)).meta;
  const info: StateInfo = {
    id: s.id,
    time: s.time,
    changedBlocks: s.changedBlocks,
    storedBytes: s.storedBytes,
    stateHash: s.stateHash,
    consistency: s.consistency,
    changedFiles: meta.changedFiles ?? 0,
  };
  if (s.consistencyReason) info.consistencyReason = s.consistencyReason;
  if (meta.unreadable?.length) info.unreadable = meta.unreadable;
  return info;
}

export async function restoreVolume(
  archiveDir: string,
  selector: StateSelector,
  target: string,
  options: VolumeRestoreOptions = {},
): Promise<VolumeRestoreReport> {
  return withReader(archiveDir, (archive) =>
    restoreVolumeState(archive, selector, target, options),
  );
}

export async function volumeHistory(archiveDir: string, file: string): Promise<FileVersion[]> {
  return withReader(archiveDir, (archive) => {
    const root = archive.manifest.primary.path;
    let rel = path.isAbsolute(file) ? path.relative(root, file) : file;
    rel = path.posix.normalize(rel.split(path.sep).join('/')).replace(/^\.?\/+|\/+$/g, '');
    if (rel === '' || rel === '.' || rel.startsWith('..'))
      throw new TidemarkError('usage', `${file} is not a path inside the protected folder ${root}`);
    return fileHistory(archive, Buffer.from(rel, 'utf8').toString('latin1'));
  });
}

export async function volumeDiff(archiveDir: string, a: number, b: number): Promise<DiffReport> {
  return withReader(archiveDir, (archive) => diffStates(archive, a, b));
}

export async function verifyVolume(
  archiveDir: string,
  options: VerifyOptions = {},
): Promise<VerifyReport> {
  return withReader(archiveDir, (archive) => verifyVolumeArchive(archive, options));
}

async function openVolumeWriter(dir: string): Promise<Archive> {
  if (!archiveMayExist(dir))
    throw new TidemarkError('archive.not-found', `no archive at ${path.resolve(dir)}`);
  const archive = await Archive.open(dir, { write: true });
  if (!isVolumeManifest(archive.manifest)) {
    await archive.close();
    throw new TidemarkError('usage', `${archive.dir} is the archive of a device, not of a folder`);
  }
  return archive;
}

async function withReader<T>(dir: string, fn: (archive: Archive) => Promise<T> | T): Promise<T> {
  if (!archiveMayExist(dir))
    throw new TidemarkError('archive.not-found', `no archive at ${path.resolve(dir)}`);
  const archive = await Archive.open(dir, { write: false });
  try {
    if (!isVolumeManifest(archive.manifest))
      throw new TidemarkError(
        'usage',
        `${archive.dir} is the archive of a device, not of a folder`,
      );
    return await fn(archive);
  } finally {
    await archive.close();
  }
}

export type { VolumeCaptureResult, VolumeRestoreOptions };
