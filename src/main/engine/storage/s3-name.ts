import { TidemarkError } from '../../../shared/errors.js';

// Kept apart from s3-store.ts so that naming an archive never loads the AWS SDK (0.4 s).

export interface S3Address {
  bucket: string;
  /** '' or ends with '/'. */
  prefix: string;
}

export const S3_SCHEME = 's3://';

export function isS3Name(name: string): boolean {
  return name.startsWith(S3_SCHEME);
}

/** `s3://BUCKET/PREFIX` → bucket and prefix; a clear usage error for anything else. */
export function parseS3Name(name: string): S3Address {
  const m = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:\/(.*))?$/.exec(name);
  if (!m)
    throw new TidemarkError(
      'usage',
      `${name} is not a valid S3 archive name: use s3://BUCKET/PREFIX (bucket: 3-63 lower-case letters, digits, dots, dashes)`,
    );
  let prefix = (m[2] ?? '').replace(/\/+$/, '');
  if (prefix.split('/').some((p) => p === '..' || p === '.'))
    throw new TidemarkError('usage', `${name}: the prefix may not contain . or .. parts`);
  if (prefix !== '') prefix += '/';
  return { bucket: m[1] as string, prefix };
}
