import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { TidemarkError } from '../../../shared/errors.js';
import { MANIFEST_NAME, parseManifest } from '../format/archive-manifest.js';
import { archiveIoError } from '../storage/io-errors.js';

export type Availability = { available: true } | { available: false; reason: string };

/** Errors that mean "the disk is not there (now)", as opposed to "this is the wrong disk". */
const GONE_CODES = new Set(['ENOENT', 'ENOTDIR', 'EIO', 'ENXIO', 'ENODEV', 'ENOTCONN', 'ESTALE']);

/**
 * Whether the secondary holding archive `archiveId` can be reached at `archiveDir`. Read only:
 * nothing is ever created there. A folder without its manifest is what an unplugged USB disk
 * leaves behind (its empty mount point), so it counts as away, never as a place to write. A
 * manifest of another archive, or a damaged one, is an error, not an absence: the wrong disk
 * must not receive this archive's updates.
 */
export async function probeSecondary(archiveDir: string, archiveId: string): Promise<Availability> {
  const dir = path.resolve(archiveDir);
  let bytes: Buffer;
  try {
    bytes = await fsp.readFile(path.join(dir, MANIFEST_NAME));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? '';
    if (!GONE_CODES.has(code)) throw archiveIoError(err, MANIFEST_NAME);
    if (code !== 'ENOENT' && code !== 'ENOTDIR')
      return { available: false, reason: `the backup disk at ${dir} fails (${code})` };
    if (!fs.existsSync(dir))
      return { available: false, reason: `the archive folder ${dir} is gone (disk unplugged?)` };
    return {
      available: false,
      reason: `${dir} has no ${MANIFEST_NAME}: its disk is not mounted (an empty mount point)`,
    };
  }
  const manifest = parseManifest(bytes, dir);
  if (manifest.archiveId !== archiveId)
    throw new TidemarkError(
      'archive.foreign',
      `${dir} holds another archive (${manifest.archiveId}) than the one cached (${archiveId}): attach the right disk`,
    );
  return { available: true };
}

/** Whether an error met while using the secondary means it went away (then the cache takes over). */
export function meansUnavailable(err: unknown): boolean {
  // Not mapped on its way up (SQLite's own I/O error, a raw system error): the code says it.
  if (!(err instanceof TidemarkError)) {
    const code = String((err as NodeJS.ErrnoException | undefined)?.code ?? '');
    return GONE_CODES.has(code) || code.startsWith('SQLITE_IOERR');
  }
  if (err.code === 'archive.not-found' || err.code === 'archive.unavailable') return true;
  const code = (err.cause as NodeJS.ErrnoException | undefined)?.code ?? '';
  // A disk the kernel remounted read-only after its errors (or mounted so) cannot take the
  // point now; the cache holds it until the disk is writable again.
  if (err.code === 'archive.read-only') return code === 'EROFS';
  if (err.code !== 'archive.io') return false;
  return GONE_CODES.has(code);
}
