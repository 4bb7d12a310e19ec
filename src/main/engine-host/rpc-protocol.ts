// The messages between the engine host (main thread) and the engine worker. Numbered requests,
// progress and log lines as their own kinds, cancellation by request number (STYLE.md, "The
// worker is a typed RPC").
import type { ErrorInfo } from '../../shared/errors.js';
import type { JobMode } from '../../shared/jobs.js';
import type { RestoreReport, StateInfo, VerifyReport } from '../../shared/states.js';
import type { SnapshotOutcome } from '../../shared/api.js';
import type { PruneReport } from '../../shared/retention.js';

export interface ArchiveSummary {
  mode: JobMode;
  primary: string;
  primarySize: number;
  blockSize: number;
}

/** Method name → parameters and result, typed from the engine's facade. */
export interface EngineMethods {
  init: { params: { primary: string; archive: string; blockSize?: number }; result: StateInfo };
  snapshot: { params: { archive: string }; result: SnapshotOutcome };
  states: { params: { archive: string }; result: StateInfo[] };
  restore: {
    params: { archive: string; stateId: number; target: string; rollback: boolean; force: boolean };
    result: RestoreReport;
  };
  verify: { params: { archive: string; deep: boolean }; result: VerifyReport };
  inspect: { params: { archive: string }; result: ArchiveSummary };
  /** Retention as of `now` (ISO); default policy when `settings` is absent. */
  prune: {
    params: { archive: string; now: string; dryRun: boolean; settings?: PruneReport['settings'] };
    result: PruneReport;
  };
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
