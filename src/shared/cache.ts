/** The local update cache as the UI sees it (DESIGN.md §1.7; engine: src/main/engine/cache). */

/** What a job's cache holds now. */
export interface CacheInfo {
  /** Updates recorded while the secondary was away, waiting to be shipped in order. */
  pending: number;
  bytes: number;
  limitBytes: number;
  /** States collapsed away because the cache was full, since the secondary was last reached. */
  collapsed: number;
}

/** One collapse made to keep the cache within its limit: fewer states, no change lost. */
export interface CacheCollapse {
  from: number;
  to: number;
  removedStates: number[];
  bytesBefore: number;
  bytesAfter: number;
}

/** The default size limit of a job's cache (2 GiB, as the CLI's `--cache-limit`). */
export const DEFAULT_CACHE_LIMIT_BYTES = 2 * 2 ** 30;
/** A limit below this could not hold one update of a small folder: refused at the boundary. */
export const MIN_CACHE_LIMIT_BYTES = 2 ** 20;
