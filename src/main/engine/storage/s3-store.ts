import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  type CompletedPart,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { TidemarkError } from '../../../shared/errors.js';
import { BlockWorker } from '../block-worker-client.js';
import { keepSharedMemory, takeSharedMemory } from '../shared-memory-pool.js';
import type { ObjectStore, ObjectWriter } from './object-store.js';
import { S3_SCHEME, type S3Address } from './s3-name.js';

export { isS3Name, parseS3Name, type S3Address } from './s3-name.js';

/** How to reach an S3-compatible server. Credentials are never printed or logged. */
export interface S3Settings {
  /** e.g. http://127.0.0.1:7480; unset = AWS itself (or AWS_ENDPOINT_URL). */
  endpoint?: string;
  region?: string;
  /** Path-style URLs (bucket in the path): on by default when an endpoint is given. */
  forcePathStyle?: boolean;
  /** Unset = the default AWS chain (environment, ~/.aws, instance roles). */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** Upload limit in bytes per second; 0 or unset = none. */
  bwlimit?: number;
  /** Multipart part size (default 8 MiB; S3's minimum is 5 MiB). */
  partSize?: number;
  /** Parts in flight at once (default 4). */
  parallel?: number;
  /** Attempts per request, with exponential backoff and jitter, on transient errors. */
  maxAttempts?: number;
  /**
   * A request whose connection stays silent this long fails (and is retried): default 60 s. A
   * stalled server (seen: a full Ceph OSD that drops writes) must not hang a job for ever.
   */
  idleTimeoutMs?: number;
}

const DEFAULT_PART = 8 << 20;
const MIN_PART = 5 << 20;
const WINDOW = 4 << 20;
const WINDOWS_KEPT = 8;
const CONNECT_TIMEOUT_MS = 10_000;
const IDLE_TIMEOUT_MS = 60_000;

/** How every S3 client of Tidemark reaches a server: where, as whom, and with which checksums. */
export function s3ClientConfig(settings: S3Settings): S3ClientConfig {
  // The SDK is pinned; its notice that later versions need Node 22 would only clutter stderr.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  return {
    ...(settings.endpoint ? { endpoint: settings.endpoint } : {}),
    region: settings.region ?? 'us-east-1',
    forcePathStyle: settings.forcePathStyle ?? settings.endpoint !== undefined,
    ...(settings.credentials ? { credentials: settings.credentials } : {}),
    // A streamed or chunked body with the SDK's default CRC trailers gets 411 from Ceph RGW;
    // integrity comes from the signed payload SHA-256 instead (withPayloadSha256).
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    // The SDK waits for ever by default.
    requestHandler: {
      connectionTimeout: CONNECT_TIMEOUT_MS,
      socketTimeout: settings.idleTimeoutMs ?? IDLE_TIMEOUT_MS,
    },
  };
}

/**
 * Objects in an S3-compatible bucket under a prefix. Uploads go as one PutObject when small and
 * as a multipart upload (parts in parallel) otherwise; nothing is visible under the name until
 * the PutObject or CompleteMultipartUpload succeeds, so an interrupted upload leaves at most an
 * unfinished multipart upload, which S3 never lists as an object and `removeIncomplete` aborts.
 * Every part and every single PUT is signed with the SHA-256 of its body, which the server checks
 * (see withPayloadSha256), and `commit` confirms the stored length with a HEAD before it resolves.
 * Parts are filled while earlier ones are in flight (`parallel` at once), so the update streams
 * to the bucket as it is produced; no update is ever buffered whole.
 *
 * Put-if-absent: PutObject and CompleteMultipartUpload send `If-None-Match: *`; servers that
 * ignore the header (older Ceph RGW on multipart) are covered by a HEAD check just before the
 * commit, which is exact for the one writer that holds the archive lock.
 */
export class S3Store implements ObjectStore {
  readonly location: string;
  readonly client: S3Client;
  private readonly windows = new Map<string, Buffer>();
  /**
   * Sizes the last listings gave. Objects never change, so reading an update (whose reader asks
   * its size first) costs no HEAD after the open's listing: a restore or a prune reads many.
   */
  private readonly listedSizes = new Map<string, number>();
  private nextSend = 0;
  /** Hashes parts for their signatures off the engine's thread; started with the first part. */
  private hasher: BlockWorker | null = null;
  readonly partSize: number;
  readonly parallel: number;

  constructor(
    readonly address: S3Address,
    readonly settings: S3Settings = {},
  ) {
    this.location = `${S3_SCHEME}${address.bucket}/${address.prefix}`;
    this.partSize = Math.max(MIN_PART, settings.partSize ?? DEFAULT_PART);
    this.parallel = Math.max(1, settings.parallel ?? 4);
    this.client = new S3Client({
      ...s3ClientConfig(settings),
      maxAttempts: settings.maxAttempts ?? 5,
      retryMode: 'standard',
    });
  }

  key(name: string): string {
    if (name.includes('..') || name.startsWith('/'))
      throw new TidemarkError('internal', `bad object name ${name}`);
    return this.address.prefix + name;
  }

  /** Creates the bucket if it does not exist (init only). */
  async ensureBucket(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.address.bucket }));
      return;
    } catch (err) {
      if (statusOf(err) !== 404) throw s3Error(err, `bucket ${this.address.bucket}`);
    }
    try {
      await this.client.send(new CreateBucketCommand({ Bucket: this.address.bucket }));
    } catch (err) {
      if (!['BucketAlreadyOwnedByYou'].includes(nameOf(err)))
        throw s3Error(err, `creating bucket ${this.address.bucket}`);
    }
  }

  async create(name: string): Promise<ObjectWriter> {
    return new S3Writer(this, name, this.key(name));
  }

  /**
   * SHA-256 (hex) of a part held in shared memory, computed on the hashing thread so that the
   * next part fills (and the scan reads, hashes and compresses) meanwhile.
   */
  async partSha256(part: Buffer, length: number): Promise<string> {
    if (!(part.buffer instanceof SharedArrayBuffer) || part.byteOffset !== 0)
      return createHash('sha256').update(part.subarray(0, length)).digest('hex');
    const digest = new SharedArrayBuffer(32);
    this.hasher ??= new BlockWorker();
    await this.hasher.run({ op: 'sha256', input: part.buffer, length, digest });
    return Buffer.from(digest).toString('hex');
  }

  /** Waits until `bytes` more may be sent under the upload limit (a token bucket). */
  async throttle(bytes: number): Promise<void> {
    const rate = this.settings.bwlimit ?? 0;
    if (rate <= 0) return;
    const now = Date.now();
    const start = Math.max(now, this.nextSend);
    this.nextSend = start + (bytes * 1000) / rate;
    const wait = this.nextSend - now - 1000;
    // One second of burst: a part may start at once, the rest waits for its share of time.
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }

  async read(name: string, offset: number, length: number, into?: Buffer): Promise<Buffer> {
    const buffer = into ?? Buffer.allocUnsafe(length);
    if (length === 0) return buffer.subarray(0, 0);
    if (length >= WINDOW) {
      const got = await this.getRange(name, offset, length, buffer);
      if (got < length) throw truncated(name);
      return buffer.subarray(0, length);
    }
    // Small reads (headers, single blocks) come from cached 4 MiB windows: one request per
    // window instead of one per block.
    let done = 0;
    while (done < length) {
      const at = offset + done;
      const index = Math.floor(at / WINDOW);
      const window = await this.window(name, index);
      const from = at - index * WINDOW;
      if (from >= window.length) throw truncated(name);
      const n = Math.min(length - done, window.length - from);
      window.copy(buffer, done, from, from + n);
      done += n;
    }
    return buffer.subarray(0, length);
  }

  private async window(name: string, index: number): Promise<Buffer> {
    const id = `${index}:${name}`;
    let window = this.windows.get(id);
    if (window) {
      this.windows.delete(id);
      this.windows.set(id, window);
      return window;
    }
    const buffer = Buffer.allocUnsafe(WINDOW);
    const got = await this.getRange(name, index * WINDOW, WINDOW, buffer, true);
    window = buffer.subarray(0, got);
    this.windows.set(id, window);
    if (this.windows.size > WINDOWS_KEPT) this.windows.delete(this.windows.keys().next().value!);
    return window;
  }

  /** Reads up to `length` bytes at `offset`; returns how many there were. */
  private async getRange(
    name: string,
    offset: number,
    length: number,
    into: Buffer,
    mayBeShort = false,
  ): Promise<number> {
    let body: Readable;
    try {
      const out = await this.client.send(
        new GetObjectCommand({
          Bucket: this.address.bucket,
          Key: this.key(name),
          Range: `bytes=${offset}-${offset + length - 1}`,
        }),
      );
      body = out.Body as Readable;
    } catch (err) {
      if (statusOf(err) === 416) {
        if (mayBeShort) return 0;
        throw truncated(name);
      }
      throw s3Error(err, `reading ${name}`);
    }
    let done = 0;
    try {
      for await (const chunk of body as AsyncIterable<Buffer>) {
        const n = Math.min(chunk.length, length - done);
        chunk.copy(into, done, 0, n);
        done += n;
      }
    } catch (err) {
      throw s3Error(err, `reading ${name}`);
    }
    return done;
  }

  async size(name: string): Promise<number> {
    return this.listedSizes.get(name) ?? this.storedSize(name);
  }

  /** The size the server gives now, never one listed before: whether the object is there. */
  async storedSize(name: string): Promise<number> {
    try {
      const out = await this.client.send(
        new HeadObjectCommand({ Bucket: this.address.bucket, Key: this.key(name) }),
      );
      return out.ContentLength ?? 0;
    } catch (err) {
      throw s3Error(err, name);
    }
  }

  async exists(name: string): Promise<boolean> {
    try {
      await this.storedSize(name);
      return true;
    } catch (err) {
      if (err instanceof TidemarkError && err.code === 'archive.corrupt') return false;
      throw err;
    }
  }

  async list(prefix: string): Promise<string[]> {
    const names: string[] = [];
    let token: string | undefined;
    do {
      let out;
      try {
        out = await this.client.send(
          new ListObjectsV2Command({
            Bucket: this.address.bucket,
            Prefix: this.key(prefix),
            ...(token ? { ContinuationToken: token } : {}),
          }),
        );
      } catch (err) {
        throw s3Error(err, `listing ${prefix}`);
      }
      for (const o of out.Contents ?? []) {
        if (!o.Key) continue;
        const name = o.Key.slice(this.address.prefix.length);
        names.push(name);
        if (o.Size !== undefined) this.listedSizes.set(name, o.Size);
      }
      token = out.IsTruncated ? out.NextContinuationToken : undefined;
    } while (token);
    return names.sort();
  }

  async delete(name: string): Promise<void> {
    this.forget(name);
    try {
      await this.client.send(
        new DeleteObjectCommand({ Bucket: this.address.bucket, Key: this.key(name) }),
      );
    } catch (err) {
      throw s3Error(err, `deleting ${name}`);
    }
  }

  /** Aborts every unfinished multipart upload under the prefix (left by a kill or an outage). */
  async removeIncomplete(): Promise<number> {
    let removed = 0;
    let keyMarker: string | undefined;
    let idMarker: string | undefined;
    do {
      let out;
      try {
        out = await this.client.send(
          new ListMultipartUploadsCommand({
            Bucket: this.address.bucket,
            Prefix: this.address.prefix,
            ...(keyMarker ? { KeyMarker: keyMarker } : {}),
            ...(idMarker ? { UploadIdMarker: idMarker } : {}),
          }),
        );
      } catch (err) {
        throw s3Error(err, 'listing unfinished uploads');
      }
      for (const u of out.Uploads ?? []) {
        if (!u.Key || !u.UploadId) continue;
        await this.abortUpload(u.Key, u.UploadId);
        removed++;
      }
      keyMarker = out.IsTruncated ? out.NextKeyMarker : undefined;
      idMarker = out.IsTruncated ? out.NextUploadIdMarker : undefined;
    } while (keyMarker);
    return removed;
  }

  async abortUpload(key: string, uploadId: string): Promise<void> {
    try {
      await this.client.send(
        new AbortMultipartUploadCommand({
          Bucket: this.address.bucket,
          Key: key,
          UploadId: uploadId,
        }),
      );
    } catch (err) {
      if (statusOf(err) !== 404) throw s3Error(err, 'aborting an unfinished upload');
    }
  }

  forget(name: string): void {
    this.listedSizes.delete(name);
    for (const id of [...this.windows.keys()]) if (id.endsWith(`:${name}`)) this.windows.delete(id);
  }

  async close(): Promise<void> {
    this.windows.clear();
    this.listedSizes.clear();
    await this.hasher?.close();
    this.hasher = null;
    this.client.destroy();
  }
}

class S3Writer implements ObjectWriter {
  length = 0;
  private part: Buffer | null = null;
  private partUsed = 0;
  /**
   * Part buffers whose request has ended, reused: at most `parallel + 1` are ever allocated, in
   * shared memory so that the hashing thread reads them where they are.
   */
  private readonly free: Buffer[] = [];
  private allocated = 0;
  private uploadId: string | undefined;
  private readonly parts: CompletedPart[] = [];
  private readonly inFlight = new Set<Promise<void>>();
  private failure: unknown;
  private done = false;

  constructor(
    private readonly store: S3Store,
    readonly name: string,
    private readonly key: string,
  ) {}

  private takeBuffer(): Buffer {
    const reused = this.free.pop();
    if (reused) return reused;
    this.allocated++;
    return Buffer.from(takeSharedMemory(this.store.partSize), 0, this.store.partSize);
  }

  async write(data: Uint8Array): Promise<void> {
    let at = 0;
    while (at < data.length) {
      const part = (this.part ??= this.takeBuffer());
      const n = Math.min(data.length - at, part.length - this.partUsed);
      const slice = data.subarray(at, at + n);
      part.set(slice, this.partUsed);
      this.partUsed += n;
      at += n;
      if (this.partUsed === part.length) await this.sendPart();
    }
    this.length += data.length;
  }

  private async sendPart(): Promise<void> {
    if (this.failure) throw this.failure;
    if (!this.uploadId) {
      try {
        const out = await this.store.client.send(
          new CreateMultipartUploadCommand({ Bucket: this.store.address.bucket, Key: this.key }),
        );
        this.uploadId = out.UploadId;
      } catch (err) {
        throw s3Error(err, `uploading ${this.name}`);
      }
    }
    // Waits for a free slot only now that this part is full: the next part was filled while
    // `parallel` others were in flight, so a slot that frees is taken at once.
    while (this.inFlight.size >= this.store.parallel) await Promise.race(this.inFlight);
    if (this.failure) throw this.failure;
    const buffer = this.part as Buffer;
    const body = buffer.subarray(0, this.partUsed);
    const number = this.parts.length + 1;
    const entry: CompletedPart = { PartNumber: number };
    this.parts.push(entry);
    // The buffer belongs to its request until it ends; the next part fills another one.
    this.part = null;
    this.partUsed = 0;
    const task = (async () => {
      const sha256 = await this.store.partSha256(buffer, body.length);
      await this.store.throttle(body.length);
      const out = await this.store.client.send(
        withPayloadSha256(
          new UploadPartCommand({
            Bucket: this.store.address.bucket,
            Key: this.key,
            UploadId: this.uploadId,
            PartNumber: number,
            Body: body,
            ContentLength: body.length,
          }),
          sha256,
        ),
      );
      entry.ETag = out.ETag;
    })()
      .catch((err: unknown) => {
        this.failure ??= s3Error(err, `uploading ${this.name}`);
      })
      .finally(() => this.free.push(buffer));
    const tracked = task.finally(() => this.inFlight.delete(tracked));
    this.inFlight.add(tracked);
  }

  async commit(): Promise<void> {
    try {
      if (this.uploadId === undefined) {
        const body = this.part ? this.part.subarray(0, this.partUsed) : Buffer.alloc(0);
        const sha256 = await this.store.partSha256(this.part ?? body, body.length);
        if (await this.store.exists(this.name)) throw alreadyThere(this.name);
        await this.store.throttle(body.length);
        try {
          await this.store.client.send(
            withPayloadSha256(
              new PutObjectCommand({
                Bucket: this.store.address.bucket,
                Key: this.key,
                Body: body,
                ContentLength: body.length,
                IfNoneMatch: '*',
              }),
              sha256,
            ),
          );
        } catch (err) {
          if (statusOf(err) === 412) throw alreadyThere(this.name);
          throw err;
        }
        if (this.part) this.free.push(this.part);
      } else {
        if (this.partUsed > 0) await this.sendPart();
        await Promise.all(this.inFlight);
        if (this.failure) throw this.failure;
        if (await this.store.exists(this.name)) throw alreadyThere(this.name);
        try {
          await this.store.client.send(
            new CompleteMultipartUploadCommand({
              Bucket: this.store.address.bucket,
              Key: this.key,
              UploadId: this.uploadId,
              MultipartUpload: { Parts: this.parts },
              IfNoneMatch: '*',
            }),
          );
        } catch (err) {
          if (statusOf(err) === 412) throw alreadyThere(this.name);
          throw err;
        }
        this.uploadId = undefined;
      }
      this.done = true;
      const stored = await this.store.storedSize(this.name);
      if (stored !== this.length)
        throw new TidemarkError(
          'archive.io',
          `${this.name}: the server holds ${stored} bytes, ${this.length} were sent`,
        );
      this.store.forget(this.name);
    } catch (err) {
      await this.abort();
      throw s3Error(err, `committing ${this.name}`);
    } finally {
      this.release();
    }
  }

  /** Once no request is left: keeps the part buffers for the next upload. */
  private release(): void {
    this.part = null;
    keepSharedMemory(...this.free.splice(0).map((b) => b.buffer as SharedArrayBuffer));
  }

  async abort(): Promise<void> {
    await Promise.allSettled(this.inFlight);
    const id = this.uploadId;
    this.uploadId = undefined;
    this.release();
    // A failed abort (server gone) leaves an unfinished upload, invisible as an object; the next
    // writer's removeIncomplete aborts it.
    if (id) await this.store.abortUpload(this.key, id).catch(() => undefined);
    if (this.done) await this.store.delete(this.name).catch(() => undefined);
  }
}

/**
 * Signs the request with the body's SHA-256 (SigV4's x-amz-content-sha256), computed on the
 * hashing thread (partSha256). The signer takes a hash given in this header as it is instead of hashing the
 * body a second time (its own hash would be another pass over every byte), and
 * the server recomputes it over the bytes it received and refuses the request on a mismatch
 * (XAmzContentSHA256Mismatch; Ceph RGW and AWS both do, see test/node/s3-checksum.test.ts): the
 * checksum of every part and single PUT is confirmed by the server before the object exists.
 */
function withPayloadSha256<C extends UploadPartCommand | PutObjectCommand>(
  command: C,
  sha256: string,
): C {
  const stack = command.middlewareStack as unknown as PayloadStack;
  stack.add(
    (next) => (args) => {
      args.request.headers['x-amz-content-sha256'] = sha256;
      return next(args);
    },
    { step: 'build', name: 'tidemarkPayloadSha256' },
  );
  return command;
}

type PayloadArgs = { request: { headers: Record<string, string> } };
type PayloadStack = {
  add(
    middleware: (
      next: (args: PayloadArgs) => Promise<unknown>,
    ) => (args: PayloadArgs) => Promise<unknown>,
    options: { step: 'build'; name: string },
  ): void;
};

function alreadyThere(name: string): TidemarkError {
  return new TidemarkError('archive.corrupt', `${name} already exists in the archive`);
}

function truncated(name: string): TidemarkError {
  return new TidemarkError('archive.corrupt', `${name} is shorter than expected (truncated)`);
}

function statusOf(err: unknown): number | undefined {
  return (err as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode;
}

function nameOf(err: unknown): string {
  return (err as { name?: string })?.name ?? '';
}

/** An S3 or network failure as a Tidemark error; messages name the object, never a secret. */
export function s3Error(err: unknown, what: string): TidemarkError {
  if (err instanceof TidemarkError) return err;
  const status = statusOf(err);
  const name = nameOf(err);
  const code = (err as NodeJS.ErrnoException)?.code ?? '';
  if (name === 'NoSuchKey' || name === 'NotFound' || (status === 404 && name !== 'NoSuchBucket'))
    return new TidemarkError('archive.corrupt', `missing from the archive: ${what}`, {
      cause: err,
    });
  if (name === 'NoSuchBucket')
    return new TidemarkError('archive.not-found', `the bucket does not exist (${what})`, {
      cause: err,
    });
  if (
    status === 403 ||
    ['AccessDenied', 'InvalidAccessKeyId', 'SignatureDoesNotMatch'].includes(name)
  )
    return new TidemarkError(
      'archive.read-only',
      `the S3 server refused access (${name || status}; check the credentials) (${what})`,
      { cause: err },
    );
  if (['QuotaExceeded', 'EntityTooLarge'].includes(name) || status === 507)
    return new TidemarkError('archive.full', `the bucket is full or over quota (${what})`, {
      cause: err,
    });
  if (['XAmzContentSHA256Mismatch', 'BadDigest', 'InvalidDigest'].includes(name))
    return new TidemarkError(
      'archive.io',
      `the S3 server received other bytes than were sent (checksum mismatch, ${name}); nothing was stored (${what})`,
      { cause: err, retryable: true },
    );
  if (
    ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN'].includes(code) ||
    name === 'TimeoutError' ||
    (status !== undefined && status >= 500)
  )
    return new TidemarkError(
      'archive.io',
      `the S3 server is unreachable or failing (${code || name || status}) (${what})`,
      { cause: err, retryable: true },
    );
  return new TidemarkError(
    'archive.io',
    `${what}: ${(err as Error)?.message ?? String(err)}`.slice(0, 500),
    { cause: err },
  );
}
