/** Retention's windows: every state within `keepWithinMs`, then one per hour, day and ISO week. */
export interface RetentionPolicy {
  keepWithinMs: number;
  hourly: number;
  daily: number;
  /** Weeks kept with one state each; null keeps one a week forever. */
  weekly: number | null;
}

/** What `tidemark prune` decided and did (also its `--json` output). */
export interface PruneReport {
  /** The time the policy was evaluated at (ISO 8601). */
  now: string;
  dryRun: boolean;
  settings: RetentionPolicy & {
    /** The IANA zone whose hours, days and ISO weeks were the buckets (the machine's unless set). */
    timeZone: string;
  };
  /** Every state before the prune, with the decision and its reason. */
  states: Array<{ id: number; time: string; keep: boolean; reason: string; pinned: boolean }>;
  kept: number;
  dropped: number;
  /** The collapses done: `states` merged into the update of `into` (parent null: a new base). */
  runs: Array<{ states: number[]; into: number; parent: number | null; update: string }>;
  /** Bytes of the update objects before and after. */
  bytesBefore: number;
  bytesAfter: number;
  bytesFreed: number;
}

/** What the space guard did after (or before) a point: never silent. */
export interface SpaceGuardReport {
  minFreeBytes: number;
  freeBefore: number;
  freeAfter: number;
  /** States removed, oldest first. */
  dropped: number[];
  /** False when the threshold could not be reached (see `reason`). */
  met: boolean;
  /** Why the threshold was not reached, for people; absent when it was. */
  reason?: string;
  /**
   * What the guard did other than integrating the oldest states into the base, for people: it
   * kept the base because integrating it would not fit in the free space, or an integration ran
   * out of space (the archive was left as it was). Absent when there is nothing to say.
   */
  notes?: string[];
}

/**
 * The engine's default policy (retention-policy.ts DEFAULT_RETENTION, checked equal by a test),
 * here for the UI's form: every state of the last 24 h, hourly for 7 days, daily for 30 days,
 * weekly beyond.
 */
export const DEFAULT_RETENTION_POLICY: RetentionPolicy = {
  keepWithinMs: 24 * 3_600_000,
  hourly: 7 * 24,
  daily: 30,
  weekly: null,
};

/** Sizes in the guard's lines: MiB with one decimal, as thresholds are set. */
export function mib(n: number): string {
  return `${(n / (1 << 20)).toFixed(1)} MiB`;
}

/**
 * One line for people: what the space guard did and whether it was enough (the CLI's stderr line,
 * the app's activity log).
 */
export function describeSpaceGuard(r: SpaceGuardReport): string {
  const what =
    r.dropped.length > 0
      ? `removed the oldest state(s) ${r.dropped.join(', ')}`
      : 'nothing could be removed';
  const notes = r.notes && r.notes.length > 0 ? `; ${r.notes.join('; ')}` : '';
  return `space guard: free space ${mib(r.freeBefore)} was below ${mib(r.minFreeBytes)}: ${what}${notes}; free now ${mib(r.freeAfter)}${r.met ? '' : ` (still below: ${r.reason ?? 'only the newest and pinned states are left'})`}`;
}
