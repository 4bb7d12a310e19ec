/**
 * The local update cache (DESIGN.md §1.7): while the secondary is away, updates go to a bounded
 * cache on the primary side and are shipped, in order, when it is back. The facade the CLI calls;
 * the parts live beside it.
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import * as path from 'node:path';
import { TidemarkError } from '../../../shared/errors.js';
import type {
  RestoreReport,
  StateInfo,
  StateLocation,
  VolumeRestoreReport,
} from '../../../shared/states.js';
import { Archive, ArchiveLock } from '../archive.js';
import { hashBlock } from '../block-hash.js';
import type { StateRow } from '../catalog.js';
import { systemClock, type Clock } from '../clock.js';
import { captureInterval } from '../device/capture.js';
import { restoreState, type RestoreOptions, type StateSelector } from '../restore.js';
import {
  guardSpace,
  mergeGuardReports,
  minFreeFor,
  withSpaceGuard,
  type MinFree,
} from '../retention/space-guard.js';
import type { SpaceGuardReport } from '../../../shared/retention.js';
import { loadStateMap } from '../state-loader.js';
import { loadVolumeTree } from '../volume/tree-loader.js';
import { restoreVolumeState, type VolumeRestoreOptions } from '../volume/restore-volume.js';
import { loadScanHashes, saveScanHashes, SCAN_HASHES_NAME } from '../volume/scan-hash-cache.js';
import type { VolumeTree } from '../volume/volume-tree.js';
import { snapshotOpenVolume, volumeStateInfo } from '../volume-engine.js';
import { cacheMapOf, writeDeviceAnchor, writeVolumeAnchor } from './cache-anchor.js';
import { CacheEntry } from './cache-entry.js';
import { collapseToFit, type CollapseReport } from './cache-limit.js';
import { meansUnavailable, probeSecondary, type Availability } from './secondary-probe.js';
import { shipPending } from './ship.js';

export interface CacheSettings {
  /** Folder of the caches (one subfolder per archive), on the primary side. */
  cacheDir: string;
  /** Bytes the cached updates may take; past it, consecutive ones are collapsed. */
  limitBytes: number;
}

export interface CacheSnapshotOptions extends CacheSettings {
  clock?: Clock;
  useSnapshots?: boolean;
  onShipped?: (stateId: number, bytes: number) => void;
  /** Devices: blocks read of all (throwing from it cancels the point, as without the cache). */
  onProgress?: (done: number, total: number) => void;
  /**
   * The secondary's space guard threshold: stored in the archive when it is reached (as without
   * the cache), else its stored one applies. Unused while the point goes to the cache.
   */
  minFree?: MinFree;
}

export interface CacheStatus {
  dir: string;
  /** Cached updates waiting for the secondary. */
  pending: number;
  bytes: number;
  limitBytes: number;
  /** What the cache holds besides the updates (the secondary's last state, indexes): not limited. */
  overheadBytes: number;
}

export interface CacheSnapshotResult {
  /** Where the new state (if any) went. */
  location: 'secondary' | 'cache';
  changed: boolean;
  state?: StateRow;
  /** Cached updates shipped to the secondary by this run, oldest first. */
  shipped: number[];
  /** Why the secondary was not used. */
  unavailable?: string;
  /** Collapses made to keep the cache within its limit (reported, never silent). */
  collapsed: CollapseReport[];
  cache: CacheStatus;
  /** What the secondary's space guard removed around shipping and this point (never silent). */
  spaceGuard?: SpaceGuardReport;
}

/**
 * Ends the interval: ships what the cache holds and records the state on the secondary when it
 * can be reached; otherwise records the state in the cache. The first run needs the secondary
 * (the cache starts from its latest state).
 */
export async function snapshotWithCache(
  archiveDir: string,
  options: CacheSnapshotOptions,
): Promise<CacheSnapshotResult> {
  const entry = CacheEntry.of(options.cacheDir, archiveDir);
  let availability = await availabilityOf(entry);
  if (availability.available) {
    try {
      return await snapshotToSecondary(entry, options);
    } catch (err) {
      if (!entry.exists()) throw err;
      // The disk may have gone while it was written (a yanked cable): ask again.
      const again = await probeSecondary(
        entry.archiveDir,
        (await entry.manifest()).archiveId,
      ).catch(() => null);
      if (again?.available === false) availability = again;
      else if (meansUnavailable(err))
        availability = { available: false, reason: (err as Error).message };
      else throw err;
    }
  }
  return snapshotToCache(entry, options, availability.reason);
}

/** The secondary's availability; with no cache yet, "available" (opening it says what is wrong). */
async function availabilityOf(entry: CacheEntry): Promise<Availability> {
  if (!entry.exists()) return { available: true };
  const manifest = await entry.manifest();
  try {
    return await probeSecondary(entry.archiveDir, manifest.archiveId);
  } catch (err) {
    // A new archive made at the same place: the cache follows it if it holds nothing to ship.
    if (
      err instanceof TidemarkError &&
      err.code === 'archive.foreign' &&
      (await entry.pendingIds()).length === 0 &&
      fs.existsSync(path.join(entry.archiveDir, 'tidemark.json'))
    )
      return { available: true };
    throw err;
  }
}

async function snapshotToSecondary(
  entry: CacheEntry,
  options: CacheSnapshotOptions,
): Promise<CacheSnapshotResult> {
  const archive = await Archive.open(entry.archiveDir, { write: true });
  let cacheLock: ArchiveLock | null = null;
  try {
    await entry.adopt(archive.manifest);
    // The cache changes below (ship, anchor): one writer at a time there too.
    cacheLock = await ArchiveLock.take(entry.dir);
    // The archive's own space guard applies as to a snapshot without cache, and before shipping
    // too: a backlog shipped onto a nearly full secondary makes room by its oldest states first.
    const minFree = await minFreeFor(archive, options.minFree);
    const beforeShip = minFree ? await guardSpace(archive, minFree) : null;
    const shipped = await ship(entry, archive, options);
    const clock = options.clock ?? systemClock;
    let changed = false;
    let state: StateRow | undefined;
    let tree: VolumeTree | undefined;
    const around = await withSpaceGuard(archive, minFree, async () => {
      if (archive.manifest.primary.kind === 'device') {
        archive.mapCache.mirror = cacheMapOf(entry);
        const result = await captureInterval(archive, {
          clock,
          ...(options.onProgress ? { onProgress: options.onProgress } : {}),
        });
        changed = result.changed;
        if (result.changed) state = result.state;
      } else {
        const done = await snapshotOpenVolume(archive, {
          clock,
          spaceGuard: false,
          ...(options.useSnapshots === false ? { useSnapshots: false } : {}),
        });
        changed = done.result.changed;
        if (done.result.changed) state = done.result.state;
        tree = done.tree;
      }
    });
    await settleCache(entry, archive, tree);
    const spaceGuard = mergeGuardReports(beforeShip, around.spaceGuard);
    return {
      location: 'secondary',
      changed,
      ...(state ? { state } : {}),
      shipped,
      collapsed: [],
      cache: await statusOf(entry, options.limitBytes),
      ...(spaceGuard ? { spaceGuard } : {}),
    };
  } finally {
    await cacheLock?.release();
    await archive.close();
  }
}

/** Ships the pending updates and, when there were any, brings the secondary's map cache along. */
async function ship(
  entry: CacheEntry,
  archive: Archive,
  options: { onShipped?: (stateId: number, bytes: number) => void },
): Promise<number[]> {
  const shipped = await shipPending(entry, archive, {
    onShipped: (id, bytes) => options.onShipped?.(id, bytes),
  });
  const last = archive.catalog.latestState();
  if (shipped.length === 0 || !last) return shipped;
  await entry.writeSecondary({
    archiveDir: entry.archiveDir,
    archiveId: archive.manifest.archiveId,
    states: archive.catalog.states(),
  });
  const { primary, blockSize } = archive.manifest;
  if (primary.kind === 'device') {
    const map = cacheMapOf(entry).load(last.id, primary.size, blockSize, last.stateHash);
    if (map) archive.mapCache.save(map, last.id);
  }
  return shipped;
}

/**
 * After the secondary was reached: records its state list in the cache and makes the cache start
 * from its latest state (device: the map cache names it; volume: an anchor of its tree), dropping
 * the copies of shipped updates.
 */
async function settleCache(entry: CacheEntry, archive: Archive, tree?: VolumeTree): Promise<void> {
  const latest = archive.catalog.latestState();
  if (!latest) return;
  await entry.writeSecondary({
    archiveDir: entry.archiveDir,
    archiveId: archive.manifest.archiveId,
    states: archive.catalog.states(),
  });
  const { manifest } = archive;
  const ids = await entry.updateIds();
  if (manifest.primary.kind === 'device') {
    const map = cacheMapOf(entry);
    if (!map.names(latest.id, manifest.primary.size, manifest.blockSize))
      map.save(await loadStateMap(archive, latest.id), latest.id);
    if (ids.length > 0) await entry.resetUpdates();
    return;
  }
  if (ids.length === 1 && ids[0] === latest.id) return;
  const full = tree ?? (await loadVolumeTree(archive, latest.id));
  if (!tree) loadScanHashes(path.join(archive.dir, SCAN_HASHES_NAME), full);
  await entry.resetUpdates();
  await writeVolumeAnchor(entry, manifest, latest, full);
  // With the secondary's scan hashes, a point into the cache reads only the changed blocks of a
  // big file that changed, and stores only those: the others are on the secondary, where the
  // update is shipped. Without them it would store the whole file again. Best effort: a cache.
  try {
    saveScanHashes(path.join(entry.dir, SCAN_HASHES_NAME), full);
  } catch {
    // The next cached point reads big files whole, and stores them whole.
  }
}

async function snapshotToCache(
  entry: CacheEntry,
  options: CacheSnapshotOptions,
  reason: string,
): Promise<CacheSnapshotResult> {
  const manifest = await entry.manifest();
  if (manifest.primary.kind === 'volume')
    refuseCacheInsideTree(options.cacheDir, manifest.primary.path);
  await ensureAnchor(entry);
  const archive = await Archive.open(entry.dir, { write: true });
  let changed: boolean;
  let state: StateRow | undefined;
  try {
    const clock = options.clock ?? systemClock;
    if (manifest.primary.kind === 'device') {
      const result = await captureInterval(archive, {
        clock,
        ...(options.onProgress ? { onProgress: options.onProgress } : {}),
      });
      changed = result.changed;
      if (result.changed) state = result.state;
    } else {
      // The cache is bounded by its own limit (collapseToFit), not by a space guard.
      const { result } = await snapshotOpenVolume(archive, {
        clock,
        spaceGuard: false,
        ...(options.useSnapshots === false ? { useSnapshots: false } : {}),
      });
      changed = result.changed;
      if (result.changed) state = result.state;
    }
  } finally {
    await archive.close();
  }
  const collapsed = await collapseToFit(entry, options.limitBytes);
  return {
    location: 'cache',
    changed,
    ...(state ? { state } : {}),
    shipped: [],
    unavailable: reason,
    collapsed,
    cache: await statusOf(entry, options.limitBytes),
  };
}

/** The cache's base: the secondary's last state, written as an anchor update if not there yet. */
async function ensureAnchor(entry: CacheEntry): Promise<void> {
  const view = await entry.readSecondary();
  const anchor = view?.states.at(-1);
  if (!view || !anchor)
    throw new TidemarkError(
      'cache.empty',
      `the secondary ${entry.archiveDir} is not available and the cache has never seen it: no update can be cached`,
    );
  if ((await entry.updateIds()).includes(anchor.id)) return;
  const manifest = await entry.manifest();
  const noCopy = new TidemarkError(
    'cache.empty',
    `the secondary ${entry.archiveDir} is not available and the cache holds no copy of its state ${anchor.id}: no update can be cached`,
  );
  if (manifest.primary.kind !== 'device') throw noCopy;
  const map = cacheMapOf(entry).load(
    anchor.id,
    manifest.primary.size,
    manifest.blockSize,
    anchor.stateHash,
  );
  if (!map) throw noCopy;
  await writeDeviceAnchor(entry, manifest, anchor, map);
}

function refuseCacheInsideTree(cacheDir: string, tree: string): void {
  const dir = path.resolve(cacheDir);
  if (dir === tree || dir.startsWith(tree + path.sep))
    throw new TidemarkError(
      'usage',
      `the cache folder ${dir} lies inside the protected folder ${tree}: choose another --cache-dir`,
    );
}

async function statusOf(entry: CacheEntry, limitBytes: number): Promise<CacheStatus> {
  const { pending, bytes, overheadBytes } = await entry.usage();
  return { dir: entry.dir, pending, bytes, limitBytes, overheadBytes };
}

/**
 * Makes the cache start from the secondary's latest state (and refreshes the list of the
 * secondary's states it keeps), so that the first point after a baseline or a prune can already
 * be cached when the secondary goes away. Ships nothing: that is the next snapshot's or `flush`'s.
 */
export async function primeCache(
  archiveDir: string,
  settings: CacheSettings,
): Promise<CacheStatus> {
  const entry = CacheEntry.of(settings.cacheDir, archiveDir);
  const archive = await Archive.open(entry.archiveDir, { write: false });
  let cacheLock: ArchiveLock | null = null;
  try {
    if ((await entry.pendingIds()).length > 0) return await statusOf(entry, settings.limitBytes);
    await entry.adopt(archive.manifest);
    cacheLock = await ArchiveLock.take(entry.dir);
    await settleCache(entry, archive);
    return await statusOf(entry, settings.limitBytes);
  } finally {
    await cacheLock?.release();
    await archive.close();
  }
}

/** The cache's pending updates of `archiveDir`, without touching the secondary. */
export async function cacheStatus(
  archiveDir: string,
  settings: CacheSettings,
): Promise<CacheStatus> {
  return statusOf(CacheEntry.of(settings.cacheDir, archiveDir), settings.limitBytes);
}

/**
 * `tidemark flush`: ships the cached updates now; the secondary must be there. The secondary's
 * space guard runs around the shipping, as around a snapshot's.
 */
export async function flushCache(
  archiveDir: string,
  settings: CacheSettings & {
    onShipped?: (stateId: number, bytes: number) => void;
    minFree?: MinFree;
  },
): Promise<{ shipped: number[]; cache: CacheStatus; spaceGuard?: SpaceGuardReport }> {
  const entry = CacheEntry.of(settings.cacheDir, archiveDir);
  if (!entry.exists()) return { shipped: [], cache: await statusOf(entry, settings.limitBytes) };
  const availability = await probeSecondary(archiveDir, (await entry.manifest()).archiveId);
  if (!availability.available)
    throw new TidemarkError('archive.unavailable', `cannot ship: ${availability.reason}`, {
      retryable: true,
    });
  const archive = await Archive.open(entry.archiveDir, { write: true });
  let cacheLock: ArchiveLock | null = null;
  try {
    cacheLock = await ArchiveLock.take(entry.dir);
    const guarded =
      (await entry.pendingIds()).length > 0
        ? await withSpaceGuard(archive, settings.minFree, () => ship(entry, archive, settings))
        : { result: [], spaceGuard: null };
    await settleCache(entry, archive);
    return {
      shipped: guarded.result,
      cache: await statusOf(entry, settings.limitBytes),
      ...(guarded.spaceGuard ? { spaceGuard: guarded.spaceGuard } : {}),
    };
  } finally {
    await cacheLock?.release();
    await archive.close();
  }
}

export type LocatedState = StateInfo & { location: StateLocation };

/**
 * Every state with where it lives. Works while the secondary is away: its states then come from
 * the list the cache kept when it was last reached.
 */
export async function statesWithLocation(
  archiveDir: string,
  cacheDir: string,
  listSecondary: () => Promise<StateInfo[]>,
): Promise<LocatedState[]> {
  const entry = CacheEntry.of(cacheDir, archiveDir);
  if (!entry.exists())
    return (await listSecondary()).map((s) => ({ ...s, location: 'secondary' as const }));
  const availability = await availabilityOf(entry);
  const pending = new Set(await entry.pendingIds());
  const onSecondary: StateInfo[] = availability.available
    ? await listSecondary()
    : ((await entry.readSecondary())?.states ?? []).map(infoOf);
  const out: LocatedState[] = onSecondary.map((s) => ({
    ...s,
    location: pending.has(s.id) ? 'both' : 'secondary',
  }));
  const known = new Set(out.map((s) => s.id));
  const cached = [...pending].filter((id) => !known.has(id));
  if (cached.length > 0) {
    const archive = await Archive.open(entry.dir, { write: false });
    try {
      for (const id of cached) {
        const row = archive.catalog.state(id);
        if (!row) continue;
        const info =
          archive.manifest.primary.kind === 'volume'
            ? await volumeStateInfo(archive, row)
            : infoOf(row);
        out.push({ ...info, location: 'cache' });
      }
    } finally {
      await archive.close();
    }
  }
  return out.sort((a, b) => a.id - b.id);
}

function infoOf(s: StateRow): StateInfo {
  const info: StateInfo = {
    id: s.id,
    time: s.time,
    changedBlocks: s.changedBlocks,
    storedBytes: s.storedBytes,
    stateHash: s.stateHash,
    consistency: s.consistency,
  };
  if (s.consistencyReason) info.consistencyReason = s.consistencyReason;
  return info;
}

/**
 * Restores a state that lives in the cache, without the secondary. Returns undefined when the
 * restore is the secondary's business (no cache, or the secondary is there and has the state).
 */
export async function restoreFromCache(
  archiveDir: string,
  cacheDir: string,
  selector: StateSelector,
  target: string,
  options: RestoreOptions & VolumeRestoreOptions,
): Promise<RestoreReport | VolumeRestoreReport | undefined> {
  const entry = CacheEntry.of(cacheDir, archiveDir);
  if (!entry.exists()) return undefined;
  const availability = await availabilityOf(entry);
  const view = await entry.readSecondary();
  const pending = await entry.pendingIds();
  const rows: Array<{ id: number; timeMs: number }> = [...(view?.states ?? [])];
  const archive = await Archive.open(entry.dir, { write: false });
  try {
    for (const id of pending) {
      const row = archive.catalog.state(id);
      if (row && !rows.some((r) => r.id === id)) rows.push(row);
    }
    rows.sort((a, b) => a.id - b.id);
    const id =
      'stateId' in selector
        ? selector.stateId
        : rows.filter((r) => r.timeMs <= selector.at.getTime()).at(-1)?.id;
    if (id === undefined || !rows.some((r) => r.id === id)) {
      if (availability.available) return undefined;
      throw new TidemarkError(
        'state.not-found',
        'stateId' in selector
          ? `state ${selector.stateId} does not exist in this archive`
          : `no state at or before ${selector.at.toISOString()}`,
      );
    }
    if (!pending.includes(id)) {
      if (availability.available) return undefined;
      throw new TidemarkError(
        'cache.needs-secondary',
        `state ${id} lives on the secondary only, which is not available: ${availability.reason}`,
      );
    }
    const primary =
      archive.manifest.primary.kind === 'device'
        ? await fsp.open(archive.manifest.primary.path, 'r').catch(() => null)
        : null;
    try {
      return archive.manifest.primary.kind === 'volume'
        ? await restoreVolumeState(archive, { stateId: id }, target, {
            ...options,
            primaryFallback: true,
          })
        : await restoreState(archive, { stateId: id }, target, {
            ...options,
            ...(primary ? { blockFallback: fromPrimary(primary, archive.manifest.blockSize) } : {}),
          });
    } catch (err) {
      if (!(err instanceof TidemarkError) || err.code !== 'archive.corrupt') throw err;
      throw new TidemarkError(
        'cache.needs-secondary',
        `state ${id} is cached, but needs blocks that only the secondary holds (${availability.available ? 'run `tidemark flush` first' : availability.reason}): ${err.message}`,
        { cause: err },
      );
    } finally {
      await primary?.close();
    }
  } finally {
    await archive.close();
  }
}

/**
 * Blocks the cache lacks (the secondary holds them) often still sit unchanged on the primary:
 * read there and taken only if their content hash is the state's, so restore stays proven.
 */
function fromPrimary(
  primary: FileHandle,
  blockSize: number,
): (index: number, hash: Buffer, into: Buffer) => Promise<boolean> {
  return async (index, hash, into) => {
    let done = 0;
    while (done < into.length) {
      const { bytesRead } = await primary.read(
        into,
        done,
        into.length - done,
        index * blockSize + done,
      );
      if (bytesRead === 0) return false;
      done += bytesRead;
    }
    return hashBlock(into).equals(hash);
  };
}
