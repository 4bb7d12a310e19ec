import { TidemarkError } from '../../../shared/errors.js';

/** The archive format this build writes and the newest it reads. See docs/FORMAT.md. */
export const FORMAT_VERSION = 1;

export function checkFormatVersion(version: unknown, what: string): void {
  if (typeof version !== 'number' || !Number.isInteger(version) || version < 1) {
    throw new TidemarkError('archive.corrupt', `${what} has no valid format version`);
  }
  if (version > FORMAT_VERSION) {
    throw new TidemarkError(
      'archive.newer-format',
      `${what} uses archive format ${version}, newer than this Tidemark reads (${FORMAT_VERSION}): update Tidemark`,
    );
  }
}
