import { TidemarkError } from '../../../shared/errors.js';

/** The archive format this build writes and the newest it reads. See docs/FORMAT.md. */
export const FORMAT_VERSION = 1;
/** Manifest version of an encrypted archive: builds that know only version 1 refuse it cleanly. */
export const ENCRYPTED_MANIFEST_VERSION = 2;
/**
 * Manifest version of an encrypted extra secondary (fan-out): it carries `replicaId`, which keeps
 * its machine-local index apart from that of the archive it mirrors (same archive id). Builds
 * that ignore it would share one index between the two, so they must refuse it.
 */
export const ENCRYPTED_REPLICA_MANIFEST_VERSION = 3;

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
