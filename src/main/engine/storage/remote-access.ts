import { TidemarkError } from '../../../shared/errors.js';
import type { S3Settings } from './s3-store.js';

/**
 * How this process reaches remote (s3://) archives and unlocks encrypted ones. Set once by the
 * CLI from its flags (or by the app from its settings); unset fields fall back to the usual
 * environment: AWS_ENDPOINT_URL, AWS_REGION / AWS_DEFAULT_REGION, the AWS credential chain,
 * TIDEMARK_BWLIMIT, TIDEMARK_PASSPHRASE / TIDEMARK_PASSPHRASE_FILE.
 */
export interface RemoteAccess {
  s3?: S3Settings;
  passphrase?: string;
  /** Encrypt archives made by init (always on for an s3:// archive unless `encrypt` is false). */
  encrypt?: boolean;
  /** Folder for the local catalog, map cache and lock of remote archives. */
  stateDir?: string;
}

let access: RemoteAccess = {};

/**
 * What one archive (an extra secondary the app was given: its own endpoint, credentials,
 * passphrase, upload limit) needs beyond the process-wide access. Keyed by the archive's
 * normalised name (absolute path or `s3://BUCKET/PREFIX/`); its fields win over `access`.
 */
export interface TargetAccess {
  s3?: S3Settings;
  passphrase?: string;
  /** Encrypt the archive when it is made (the app: exactly when a passphrase was given). */
  encrypt?: boolean;
}

const targets = new Map<string, TargetAccess>();

/** Adds or replaces the access of the named archives (the app sets it before each fan-out). */
export function setTargetAccess(entries: Record<string, TargetAccess>): void {
  for (const [name, value] of Object.entries(entries)) targets.set(name, value);
}

export function targetAccess(name: string | undefined): TargetAccess | undefined {
  return name === undefined ? undefined : targets.get(name);
}

export function setRemoteAccess(next: RemoteAccess): void {
  access = next;
}

export function remoteAccess(): RemoteAccess {
  return access;
}

/** The S3 settings for the archive `name` (its own, else this process's, else the environment). */
export function s3Settings(name?: string): S3Settings {
  const env = process.env;
  const settings: S3Settings = { ...access.s3, ...targetAccess(name)?.s3 };
  const endpoint = settings.endpoint ?? env.AWS_ENDPOINT_URL_S3 ?? env.AWS_ENDPOINT_URL;
  if (endpoint) settings.endpoint = endpoint;
  const region = settings.region ?? env.AWS_REGION ?? env.AWS_DEFAULT_REGION;
  if (region) settings.region = region;
  if (settings.bwlimit === undefined && env.TIDEMARK_BWLIMIT)
    settings.bwlimit = parseBwlimit(env.TIDEMARK_BWLIMIT, 'TIDEMARK_BWLIMIT');
  if (settings.maxAttempts === undefined && env.TIDEMARK_S3_MAX_ATTEMPTS)
    settings.maxAttempts = Number(env.TIDEMARK_S3_MAX_ATTEMPTS) || undefined;
  return settings;
}

/** Bytes per second: a whole number, optionally with k, M or G (powers of 1024). */
export function parseBwlimit(value: string, what: string): number {
  const m = /^(\d+)([kKmMgG]?)$/.exec(value.trim());
  if (!m)
    throw new TidemarkError(
      'usage',
      `${what} needs bytes per second, e.g. 5000000 or 5M (got ${value})`,
    );
  const unit = { '': 1, k: 1024, m: 1 << 20, g: 1 << 30 }[(m[2] as string).toLowerCase()] ?? 1;
  return Number(m[1]) * unit;
}
