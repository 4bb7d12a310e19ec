/**
 * Errors travel as data between processes: a namespaced code, a message written for people,
 * and whether trying again may help. The engine throws `TidemarkError`; the CLI, the worker
 * RPC and the headless server turn it into `ErrorInfo`.
 */
export type ErrorCode =
  | 'usage'
  | 'primary.not-found'
  | 'primary.unreadable'
  | 'primary.size-changed'
  | 'primary.vanished'
  | 'archive.not-found'
  | 'archive.not-empty'
  | 'archive.foreign'
  | 'archive.other-primary'
  | 'archive.newer-format'
  | 'archive.corrupt'
  | 'archive.read-only'
  | 'archive.full'
  | 'archive.locked'
  | 'archive.io'
  | 'archive.unavailable'
  | 'cache.empty'
  | 'cache.needs-secondary'
  | 'cache.conflict'
  | 'state.not-found'
  | 'restore.target-too-small'
  | 'restore.target-exists'
  | 'restore.target-is-primary'
  | 'restore.target-unwritable'
  | 'restore.mismatch'
  | 'volume.pre-hook-failed'
  | 'job.not-found'
  | 'job.busy'
  | 'job.cancelled'
  | 'job.bad-choice'
  | 'engine.crashed'
  | 'internal';

export interface ErrorInfo {
  code: ErrorCode;
  message: string;
  retryable: boolean;
}

export type Result<T> = { ok: true; value: T } | { ok: false; error: ErrorInfo };

export class TidemarkError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;

  constructor(
    code: ErrorCode,
    message: string,
    options?: { retryable?: boolean; cause?: unknown },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'TidemarkError';
    this.code = code;
    this.retryable = options?.retryable ?? false;
  }

  toInfo(): ErrorInfo {
    return { code: this.code, message: this.message, retryable: this.retryable };
  }
}

export function isTidemarkError(value: unknown): value is TidemarkError {
  return value instanceof TidemarkError;
}
