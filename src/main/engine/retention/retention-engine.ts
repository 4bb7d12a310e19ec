import * as path from 'node:path';
import { TidemarkError } from '../../../shared/errors.js';
import type { PruneReport } from '../../../shared/retention.js';
import { Archive } from '../archive.js';
import { archiveMayExist } from '../archive-target.js';
import { setPinned } from './pins.js';
import { pruneArchive, type PruneOptions } from './prune.js';

/**
 * Entry points of retention for the CLI and the engine host: open the archive (a dry run only
 * reads it), run, close.
 */
export async function pruneArchiveAt(dir: string, options: PruneOptions): Promise<PruneReport> {
  return withArchive(dir, options.dryRun !== true, (archive) => pruneArchive(archive, options));
}

export async function pinStateAt(
  dir: string,
  stateId: number,
  pinned: boolean,
): Promise<{ state: number; pinned: boolean; changed: boolean }> {
  return withArchive(dir, true, async (archive) => ({
    state: stateId,
    pinned,
    changed: await setPinned(archive, stateId, pinned),
  }));
}

async function withArchive<T>(
  dir: string,
  write: boolean,
  fn: (archive: Archive) => Promise<T>,
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
