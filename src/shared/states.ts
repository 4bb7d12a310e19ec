/** Shared shapes of what the engine reports; the CLI's `--json` output uses them as they are. */
import type { SecondarySettingsView } from './secondaries.js';

export type Consistency = 'snapshot' | 'quiescent' | 'none';

export interface StateInfo {
  id: number;
  /** ISO 8601, UTC. */
  time: string;
  changedBlocks: number;
  /** Bytes this state's update added to the archive (its file size). */
  storedBytes: number;
  /** Hex BLAKE3 state hash; restore proves itself against it. */
  stateHash: string;
  consistency: Consistency;
  consistencyReason?: string;
  /** Volume archives: files, folders and links added, changed or removed in the interval. */
  changedFiles?: number;
  /** Retention never removes a pinned state (`tidemark pin`). */
  pinned?: boolean;
  /** Volume archives: files that could not be read at this point, and why (they keep their previous version). */
  unreadable?: Array<{ path: string; reason: string }>;
  /** Where the state's update lives: on the secondary, in the local cache, or both (`states --json`). */
  location?: StateLocation;
}

export type StateLocation = 'secondary' | 'cache' | 'both';

export type VolumeEntryType =
  'file' | 'dir' | 'symlink' | 'fifo' | 'socket' | 'char-device' | 'block-device';

export interface VolumeRestoreReport {
  state: number;
  target: string;
  /** The path inside the state that was restored ('' for the whole tree, or for several paths). */
  path: string;
  /** Several paths restored in one pass (`--path` given more than once): each, as restored. */
  paths?: string[];
  files: number;
  dirs: number;
  symlinks: number;
  bytesWritten: number;
  /** Entries not recreated, with why (sockets; device nodes without root). */
  skipped: Array<{ path: string; reason: string }>;
  stateHash: string;
  verified: true;
}

export interface FileVersion {
  state: number;
  time: string;
  type: VolumeEntryType;
  size: number;
  mode: number;
  mtime: string;
  /** Hex content hash of a file (BLAKE3 over its block hashes); absent for other types. */
  contentHash?: string;
  target?: string;
}

export interface DiffEntry {
  path: string;
  change: 'added' | 'removed' | 'modified';
  type: VolumeEntryType;
  /** Size in A (removed, modified) and in B (added, modified). */
  sizeA?: number;
  sizeB?: number;
}

export interface DiffReport {
  from: number;
  to: number;
  added: number;
  removed: number;
  modified: number;
  bytesAdded: number;
  bytesRemoved: number;
  entries: DiffEntry[];
}

export interface VerifyProblem {
  /** Archive-relative path of the damaged object. */
  file: string;
  message: string;
  /** States that cannot be restored as recorded because of this problem. */
  states: number[];
}

export interface VerifyReport {
  ok: boolean;
  deep: boolean;
  updatesChecked: number;
  blocksChecked: number;
  bytesChecked: number;
  statesChecked: number;
  problems: VerifyProblem[];
}

export interface RestoreReport {
  state: number;
  target: string;
  rollback: boolean;
  /** Blocks written to the target (for a rollback, only those that differed). */
  blocksWritten: number;
  bytesWritten: number;
  stateHash: string;
  verified: true;
}

/** One entry of a folder of a volume state, as the tree browser shows it. */
export interface BrowseEntry {
  name: string;
  /** Relative to the protected folder, '/'-separated. */
  path: string;
  type: VolumeEntryType;
  /** Bytes of a file; 0 for other types. */
  size: number;
  /** ISO 8601. */
  mtime: string;
}

/** Children of one folder of a volume state, sorted folders first, then by name. */
export interface BrowseReport {
  state: number;
  /** The folder listed ('' for the protected folder itself). */
  path: string;
  /** Entries the folder holds in all; `entries` is the page from `offset`. */
  total: number;
  offset: number;
  entries: BrowseEntry[];
}

/** Entries of a volume state whose name holds a search text. */
export interface SearchReport {
  state: number;
  query: string;
  /** Found in all; `entries` holds at most the asked limit, in path order. */
  total: number;
  entries: BrowseEntry[];
}

/** What restoring one path of a volume state would write. */
export interface VolumeMeasure {
  state: number;
  path: string;
  type: VolumeEntryType;
  files: number;
  bytes: number;
}

/**
 * One extra secondary of an archive (fan-out: another disk, a bucket), as `secondary list --json`,
 * `snapshot --json` (`secondaries`) and the app's job status show it.
 */
export interface SecondaryStatus {
  /** An absolute folder path or `s3://BUCKET/PREFIX`. */
  target: string;
  encrypted: boolean;
  /** Whether it could be reached just now. */
  reachable: boolean;
  /** Its newest state, as of the last time it was reached (null: it holds none yet). */
  lastState: { id: number; time: string; stateHash: string } | null;
  /** States it holds (its own retention decides which). */
  states: number;
  /** Updates waiting for it in the local cache. */
  queued: number;
  /** States the archive has after its newest one. */
  behind: number;
  /** States shipped to it by this run, oldest first (snapshot, flush). */
  shipped?: number[];
  /** When it was last reached (ISO 8601). */
  lastContact?: string;
  /** Why it is behind (away, full, wrong disk...). */
  error?: string;
  /** Its own retention after this run's shipping: the states it dropped and the bytes freed. */
  pruned?: { dropped: number[]; bytesFreed: number };
  /** Its queue reached its limit: `notQueued` states wait in the archive, not in the queue. */
  queueFull?: { limitBytes: number; bytes: number; notQueued: number };
  /** The app's settings of it (absent for one added with the CLI and never changed). */
  settings?: SecondarySettingsView;
}
