import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { TidemarkError } from '../../shared/errors.js';
import { readManifest } from './archive.js';
import { CATALOG_NAME } from './catalog.js';
import { MANIFEST_NAME } from './format/archive-manifest.js';
import { archiveIoError } from './storage/io-errors.js';
import { makeDirs } from './storage/folder-store.js';

/**
 * Checks that `dir` may receive a new archive of `primaryPath` and creates it if missing;
 * returns whether it was created (a failed init then removes it). `nextStep` names the command
 * to use instead when the folder already holds this primary's archive.
 */
export async function prepareEmptyDir(
  dir: string,
  primaryPath: string,
  nextStep: string,
): Promise<boolean> {
  let entries: string[];
  try {
    entries = await fsp.readdir(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOTDIR')
      throw new TidemarkError('archive.foreign', `${dir} is a file, not a folder`);
    if (code !== 'ENOENT') throw archiveIoError(err, dir);
    try {
      await makeDirs(dir);
    } catch (mkErr) {
      throw archiveIoError(mkErr, `creating ${dir}`);
    }
    return true;
  }
  if (entries.includes(MANIFEST_NAME)) {
    const m = await readManifest(dir);
    if (m.primary.path === primaryPath) {
      throw new TidemarkError(
        'archive.not-empty',
        `${dir} already holds an archive of ${primaryPath}: use ${nextStep}`,
      );
    }
    throw new TidemarkError(
      'archive.other-primary',
      `${dir} holds the archive of another primary (${m.primary.path})`,
    );
  }
  if (entries.length > 0) {
    throw new TidemarkError(
      'archive.not-empty',
      `${dir} is not empty and holds no Tidemark archive: choose an empty folder`,
    );
  }
  return false;
}

/** Removes what a failed init wrote, leaving the folder as it found it. */
export async function removeArchiveFiles(dir: string, extra: string[] = []): Promise<void> {
  for (const name of [MANIFEST_NAME, CATALOG_NAME, `${CATALOG_NAME}-journal`, 'updates', ...extra])
    await fsp.rm(path.join(dir, name), { recursive: true, force: true }).catch(() => undefined);
}
