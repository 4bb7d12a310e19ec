import { TidemarkError } from '../../../shared/errors.js';

/** Maps an operating-system error met on the secondary to a Tidemark error people can act on. */
export function archiveIoError(err: unknown, what: string): TidemarkError {
  if (err instanceof TidemarkError) return err;
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case 'ENOSPC':
    case 'EDQUOT':
      return new TidemarkError('archive.full', `the backup disk is full (${what})`, { cause: err });
    case 'EROFS':
      return new TidemarkError('archive.read-only', `the backup disk is read-only (${what})`, {
        cause: err,
      });
    case 'EACCES':
    case 'EPERM':
      return new TidemarkError(
        'archive.read-only',
        `no permission to write the archive (${what})`,
        { cause: err },
      );
    case 'ENOENT':
      return new TidemarkError('archive.corrupt', `missing from the archive: ${what}`, {
        cause: err,
      });
    case 'EIO':
    case 'ENXIO':
    case 'ENODEV':
      return new TidemarkError('archive.io', `the backup disk failed or vanished (${what})`, {
        cause: err,
        retryable: true,
      });
    default:
      return new TidemarkError('archive.io', `${what}: ${(err as Error)?.message ?? String(err)}`, {
        cause: err,
      });
  }
}
