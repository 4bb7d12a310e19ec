// The messages between the engine host (main thread) and the engine worker. Numbered requests,
// progress and log lines as their own kinds, cancellation by request number (STYLE.md, "The
// worker is a typed RPC").
import type { ErrorInfo } from '../../shared/errors.js';
import type { JobMode } from '../../shared/jobs.js';
import type {
  BrowseReport,
  DiffReport,
  FileVersion,
  SearchReport,
  RestoreReport,
  SecondaryStatus,
  StateInfo,
  VerifyReport,
  VolumeMeasure,
  VolumeRestoreReport,
} from '../../shared/states.js';
import type { SnapshotOutcome } from '../../shared/api.js';
import type { PruneReport, RetentionPolicy, SpaceGuardReport } from '../../shared/retention.js';
import type { CacheSettings, CacheStatus } from '../engine/cache/cached-engine.js';
import type { SecondaryPolicy } from '../engine/fanout/fan-out.js';
import type { TargetAccess } from '../engine/storage/remote-access.js';

export interface ArchiveSummary {
  mode: JobMode;
  primary: string;
  primarySize: number;
  blockSize: number;
}

/** Method name → parameters and result, typed from the engine's facade. */
export interface EngineMethods {
  /** `mode` 'volume' makes the archive of a folder tree; a device by default. */
  init: {
    params: { primary: string; archive: string; blockSize?: number; mode?: JobMode };
    result: StateInfo;
  };
  /** With `cache`: to the secondary when it is there (shipping what the cache holds), else to the cache. */
  snapshot: { params: { archive: string; cache?: CacheSettings }; result: SnapshotOutcome };
  /** With `cacheDir`: every state with its `location`, also while the secondary is away. */
  states: { params: { archive: string; cacheDir?: string }; result: StateInfo[] };
  /** Fan-out: ships what each extra secondary lacks (`ship` false: only reports where each is). */
  secondaries: {
    params: {
      archive: string;
      targets: string[];
      cacheDir: string;
      ship: boolean;
      /** Each secondary's own endpoint, credentials, passphrase, upload limit (never logged). */
      access?: Record<string, TargetAccess>;
      /** Each secondary's own retention and queue limit; `now` (ISO) is the retention's clock. */
      policies?: Record<string, SecondaryPolicy>;
      now?: string;
    };
    result: SecondaryStatus[];
  };
  /**
   * Fan-out: makes `target` an extra secondary holding every state of the archive; an s3://
   * target's bucket is checked first (one quick request: unreachable, refused, missing).
   */
  addSecondary: {
    params: {
      archive: string;
      target: string;
      cacheDir: string;
      access: Record<string, TargetAccess>;
    };
    result: SecondaryStatus;
  };
  restore: {
    params: {
      archive: string;
      stateId: number;
      target: string;
      rollback: boolean;
      force: boolean;
      /** Volumes: the file or folder of the state to restore (all of it when absent). */
      path?: string;
      /** A state that lives in this cache is restored from it, without the secondary. */
      cacheDir?: string;
      /** Volumes: several files or folders of the state, restored in one pass. */
      paths?: string[];
    };
    result: RestoreReport | VolumeRestoreReport;
  };
  verify: { params: { archive: string; deep: boolean }; result: VerifyReport };
  inspect: { params: { archive: string }; result: ArchiveSummary };
  /** Retention as of `now` (ISO); default policy when `settings` is absent. */
  prune: {
    params: {
      archive: string;
      now: string;
      dryRun: boolean;
      settings?: RetentionPolicy & { timeZone?: string };
    };
    result: PruneReport;
  };
  /** Retention never removes a pinned state. */
  pin: {
    params: { archive: string; stateId: number; pinned: boolean };
    result: { state: number; pinned: boolean; changed: boolean };
  };
  /** Ships the cached updates now (the secondary must be there). */
  flush: { params: { archive: string; cache: CacheSettings }; result: CacheFlush };
  /** Makes the cache start from the secondary's latest state (after a baseline or a prune). */
  primeCache: { params: { archive: string; cache: CacheSettings }; result: CacheStatus };
  /** What the cache holds for the archive (the secondary is not touched). */
  cacheStatus: { params: { archive: string; cache: CacheSettings }; result: CacheStatus };
  /** Volumes: the children of one folder of a state. */
  browse: {
    params: { archive: string; stateId: number; path: string; offset: number; limit: number };
    result: BrowseReport;
  };
  /** Volumes: what changed from state `from` to state `to`. */
  diff: { params: { archive: string; from: number; to: number }; result: DiffReport };
  /** Volumes: entries of a state whose name holds `query`. */
  search: {
    params: { archive: string; stateId: number; query: string; limit: number };
    result: SearchReport;
  };
  /** Volumes: the versions of one path across the states, oldest first. */
  history: { params: { archive: string; path: string }; result: FileVersion[] };
  /** Volumes: what a restore of one path of a state would write. */
  measure: { params: { archive: string; stateId: number; path: string }; result: VolumeMeasure };
}

export interface CacheFlush {
  shipped: number[];
  cache: CacheStatus;
  /** What the secondary's space guard removed around the shipping (never silent). */
  spaceGuard?: SpaceGuardReport;
}

export type EngineMethod = keyof EngineMethods;

export type ToWorker =
  | { kind: 'call'; id: number; method: EngineMethod; params: unknown }
  | { kind: 'cancel'; id: number }
  /** Honoured only when the worker was started with `allowCrash` (tests of the restart). */
  | { kind: 'crash' };

export type FromWorker =
  | { kind: 'result'; id: number; value: unknown }
  | { kind: 'error'; id: number; error: ErrorInfo }
  | { kind: 'progress'; id: number; done: number; total: number }
  | { kind: 'log'; id: number | null; level: 'info' | 'warn'; message: string };

export interface WorkerData {
  allowCrash: boolean;
}
