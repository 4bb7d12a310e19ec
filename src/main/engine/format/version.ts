import { TidemarkError } from '../../../shared/errors.js';

/** The archive format this build writes and the newest it reads. See docs/FORMAT.md. */
export const FORMAT_VERSION = 1;
/** Manifest version of an encrypted archive: builds that know only version 1 refuse it cleanly. */
export const ENCRYPTED_MANIFEST_VERSION = 2;

export function checkFormatVersion(
  version: unknown,
  what: string,
  newest: number = FORMAT_VERSION,
): void {
  if (typeof version !== 'number' || !Number.isInteger(version) || version < 1) {
    throw new TidemarkError('archive.corrupt', `${what} has no valid format version`);
  }
  if (version > newest) {
    throw new TidemarkError(
      'archive.newer-format',
      `${what} uses archive format ${version}, newer than this Tidemark reads (${newest}): update Tidemark`,
    );
  }
}
