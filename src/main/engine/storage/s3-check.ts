import { HeadBucketCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { TidemarkError } from '../../../shared/errors.js';
import type { S3Address } from './s3-name.js';
import { s3ClientConfig, type S3Settings } from './s3-store.js';

/**
 * Asks the server once, quickly, whether the bucket can be used with these settings, so that a
 * person typing them into the app reads one line saying what is wrong (unreachable endpoint,
 * refused credentials, missing bucket) instead of waiting for the store's retries and backoff.
 * Unlike `init`, the bucket is never created here: a typo must not make a new bucket.
 */
export async function checkS3Bucket(address: S3Address, settings: S3Settings): Promise<void> {
  const where = settings.endpoint ?? 'AWS S3';
  const client = new S3Client({
    ...s3ClientConfig(settings),
    maxAttempts: 1,
    requestHandler: { connectionTimeout: 5000, requestTimeout: 15000 },
  });
  try {
    await client.send(new HeadBucketCommand({ Bucket: address.bucket }));
    // HEAD on a bucket does not prove read access on every server: list one key too.
    await client.send(
      new ListObjectsV2Command({ Bucket: address.bucket, Prefix: address.prefix, MaxKeys: 1 }),
    );
  } catch (err) {
    throw bucketError(err, address.bucket, where);
  } finally {
    client.destroy();
  }
}

function bucketError(err: unknown, bucket: string, where: string): TidemarkError {
  const e = err as {
    name?: string;
    code?: string;
    Code?: string;
    $metadata?: { httpStatusCode?: number };
  };
  const status = e.$metadata?.httpStatusCode;
  const name = e.Code ?? e.name ?? '';
  const code = e.code ?? (err as { cause?: { code?: string } }).cause?.code ?? '';
  if (status === 404 || name === 'NoSuchBucket' || name === 'NotFound')
    return new TidemarkError(
      'archive.not-found',
      `the bucket ${bucket} does not exist at ${where}: create it first or check its name`,
    );
  if (
    status === 401 ||
    status === 403 ||
    ['AccessDenied', 'InvalidAccessKeyId', 'SignatureDoesNotMatch', 'Forbidden'].includes(name)
  )
    return new TidemarkError(
      'archive.read-only',
      `${where} refused the credentials for bucket ${bucket} (${name || status}): check the access key id and secret`,
    );
  if (status === 301 || name === 'PermanentRedirect' || name === 'AuthorizationHeaderMalformed')
    return new TidemarkError(
      'archive.io',
      `${where} says the bucket ${bucket} is in another region (${name || status}): check the region`,
    );
  if (status === undefined || status >= 500)
    return new TidemarkError(
      'archive.unavailable',
      `cannot reach the S3 server ${where} (${code || name || status || 'no answer'}): check the endpoint`,
      { retryable: true },
    );
  return new TidemarkError('archive.io', `${where}, bucket ${bucket}: ${name || status}`);
}
