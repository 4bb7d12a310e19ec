import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { TidemarkError } from '../../shared/errors.js';
import type { RestoreReport, StateInfo, VerifyReport } from '../../shared/states.js';
import { Archive, ArchiveLock } from './archive.js';
import { removeArchiveFiles } from './archive-dir.js';
import { encryptionForInit } from './encryption/unlock.js';
import {
  archiveMayExist,
  archiveTarget,
  prepareTarget,
  removeRemoteObjects,
} from './archive-target.js';
import type { StateRow } from './catalog.js';
import { rebuildCatalogFrom } from './catalog-sync.js';
import { systemClock, type Clock } from './clock.js';
import { captureBaseline, captureInterval, type CaptureResult } from './device/capture.js';
import { deviceNumbers, PrimaryDevice } from './device/primary-device.js';
import { MANIFEST_NAME, newManifest } from './format/archive-manifest.js';
import type { Journal } from './journal.js';
import type { RestoreOptions, StateSelector } from './restore.js';
import { pinnedStates } from './retention/pins.js';
import { withSpaceGuard, type MinFree } from './retention/space-guard.js';
import type { SpaceGuardReport } from '../../shared/retention.js';
import type { VerifyOptions } from './verify.js';

/**
 * Default block size, chosen with `npm run bench` (README, "Block size"): on an ext4 image
 * with 1–2 % of change per interval, 16 KiB blocks add 0.9× what restic adds, 64 KiB 1.4×,
 * 256 KiB 3×; the block map costs 40 B a block (160 MiB for a 64 GiB disk).
 */
export const DEFAULT_BLOCK_SIZE = 16 * 1024;
export const MIN_BLOCK_SIZE = 4096;
export const MAX_BLOCK_SIZE = 16 << 20;

export interface InitOptions {
  blockSize?: number;
  clock?: Clock;
  /** Blocks read of the baseline so far; throwing from it abandons the init. */
  onProgress?: (done: number, total: number) => void;
}

/** Creates an archive of a device primary in `archiveDir` and records its baseline, state 0. */
export async function initArchive(
  primaryPath: string,
  archiveDir: string,
  options: InitOptions = {},
): Promise<StateRow> {
  const blockSize = options.blockSize ?? DEFAULT_BLOCK_SIZE;
  if (
    !Number.isInteger(blockSize) ||
    blockSize < MIN_BLOCK_SIZE ||
    blockSize > MAX_BLOCK_SIZE ||
    blockSize % 4096 !== 0
  ) {
    throw new TidemarkError(
      'usage',
      `block size must be a multiple of 4096 between ${MIN_BLOCK_SIZE} and ${MAX_BLOCK_SIZE} bytes`,
    );
  }
  const device = await PrimaryDevice.open(primaryPath);
  await device.close();
  const target = await archiveTarget(archiveDir);
  const dir = target.localDir;
  if (!target.remote && device.type === 'block-device' && archiveLiesOn(dir, device.stat.rdev)) {
    // Every write to the archive would change the primary and be archived again, forever.
    throw new TidemarkError(
      'usage',
      `${dir} lies on ${device.path} itself: keep the archive on another disk`,
    );
  }
  const archiveId = randomUUID();
  const encryption = await encryptionForInit(target.remote, archiveId, target.name);
  const created = await prepareTarget(target, device.path, '`tidemark snapshot`');
  const lock = await ArchiveLock.take(dir);
  let archive: Archive | null = null;
  const store = target.openStore();
  try {
    const manifest = newManifest({
      archiveId,
      createdAt: (options.clock ?? systemClock).now().toISOString(),
      blockSize,
      primary: { kind: 'device', path: device.path, size: device.size },
      ...(encryption ? { encryption } : {}),
    });
    const writer = await store.create(MANIFEST_NAME);
    await writer.write(Buffer.from(JSON.stringify(manifest, null, 2) + '\n'));
    await writer.commit();
    archive = await Archive.adopt(dir, lock, target);
    const state = await captureBaseline(archive, options.clock ?? systemClock, options.onProgress);
    await archive.close();
    return state;
  } catch (err) {
    // A failed init leaves the folder as it found it.
    await archive?.close().catch(() => undefined);
    await removeRemoteObjects(target).catch(() => undefined);
    await removeArchiveFiles(dir);
    await lock.release();
    if (created) await fsp.rmdir(dir).catch(() => undefined);
    throw err;
  } finally {
    await store.close();
  }
}

/** Whether the filesystem holding `dir` lives on block device `rdev` or on one of its partitions. */
function archiveLiesOn(dir: string, rdev: number): boolean {
  let existing = dir;
  while (!fs.existsSync(existing) && path.dirname(existing) !== existing)
    existing = path.dirname(existing);
  const { major, minor } = deviceNumbers(fs.statSync(existing).dev);
  const primary = deviceNumbers(rdev);
  if (major === primary.major && minor === primary.minor) return true;
  try {
    // /sys/dev/block/M:m of a partition links into its disk's folder, which has the disk's dev.
    const disk = fs.readFileSync(`/sys/dev/block/${major}:${minor}/../dev`, 'utf8').trim();
    return disk === `${primary.major}:${primary.minor}`;
  } catch {
    return false;
  }
}

export interface SnapshotOptions {
  clock?: Clock;
  /** Space guard threshold; stored in the archive, which uses the stored one when not given. */
  minFree?: MinFree;
  journal?: Journal;
  onProgress?: (done: number, total: number) => void;
}

export type SnapshotResult = CaptureResult & { spaceGuard?: SpaceGuardReport };

/** Ends the current interval now (see captureInterval), between two space guards. */
export async function snapshotArchive(
  archiveDir: string,
  options: SnapshotOptions = {},
): Promise<SnapshotResult> {
  return withArchive(archiveDir, true, async (archive) => {
    const { result, spaceGuard } = await withSpaceGuard(archive, options.minFree, () =>
      captureInterval(archive, {
        clock: options.clock ?? systemClock,
        ...(options.journal ? { journal: options.journal } : {}),
        ...(options.onProgress ? { onProgress: options.onProgress } : {}),
      }),
    );
    return spaceGuard ? { ...result, spaceGuard } : result;
  });
}

export async function listStates(archiveDir: string): Promise<StateInfo[]> {
  return withArchive(archiveDir, false, async (archive) => {
    const pins = await pinnedStates(archive.store);
    return archive.catalog.states().map((s) => {
      const info: StateInfo = {
        id: s.id,
        time: s.time,
        changedBlocks: s.changedBlocks,
        storedBytes: s.storedBytes,
        stateHash: s.stateHash,
        consistency: s.consistency,
        pinned: pins.has(s.id),
      };
      if (s.consistencyReason) info.consistencyReason = s.consistencyReason;
      return info;
    });
  });
}

export async function restoreArchive(
  archiveDir: string,
  selector: StateSelector,
  target: string,
  options: RestoreOptions = {},
): Promise<RestoreReport> {
  // Restore and verify are loaded by their own commands: a snapshot, the command that runs
  // every interval, does not pay for loading them.
  const { restoreState } = await import('./restore.js');
  return withArchive(archiveDir, false, (archive) =>
    restoreState(archive, selector, target, options),
  );
}

export async function verify(
  archiveDir: string,
  options: VerifyOptions = {},
): Promise<VerifyReport> {
  const { verifyArchive } = await import('./verify.js');
  return withArchive(archiveDir, false, (archive) => verifyArchive(archive, options));
}

/**
 * Recreates the catalog from the update objects alone. Damaged updates are left out and named;
 * `verify` says which states they touch.
 */
export async function rebuildCatalog(
  archiveDir: string,
): Promise<{ states: number; damaged: string[] }> {
  return withArchive(archiveDir, true, async (archive) =>
    rebuildCatalogFrom(archive, await archive.updateNames(), true),
  );
}

async function withArchive<T>(
  dir: string,
  write: boolean,
  fn: (archive: Archive) => Promise<T> | T,
): Promise<T> {
  if (!archiveMayExist(dir))
    throw new TidemarkError('archive.not-found', `no archive at ${path.resolve(dir)}`);
  const archive = await Archive.open(dir, { write });
  try {
    return await fn(archive);
  } finally {
    await archive.close();
  }
}

export type { CaptureResult, StateSelector, RestoreOptions, VerifyOptions };
