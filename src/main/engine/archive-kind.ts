/**
 * Whether an archive protects a folder (volume mode) or a device. Kept apart from both engines
 * so that the CLI can tell which one a command needs before it loads either.
 */
import * as path from 'node:path';
import { TidemarkError } from '../../shared/errors.js';
import { readManifest } from './archive.js';
import { archiveMayExist, archiveTarget, readTargetManifest } from './archive-target.js';
import type { ArchiveManifest } from './format/archive-manifest.js';

export function isVolumeManifest(m: ArchiveManifest): boolean {
  return m.primary.kind === 'volume';
}

/** Whether the archive in `dir` protects a volume (false for a device; throws if none). */
export async function isVolumeArchive(dir: string): Promise<boolean> {
  if (!archiveMayExist(dir))
    throw new TidemarkError('archive.not-found', `no archive at ${path.resolve(dir)}`);
  const target = await archiveTarget(dir);
  if (!target.remote) return isVolumeManifest(await readManifest(target.localDir));
  const store = target.openStore();
  try {
    return isVolumeManifest(await readTargetManifest(target, store));
  } finally {
    await store.close();
  }
}
