// What a job is, as stored and as shown. Pure TypeScript + zod: shared by main, preload,
// renderer and the headless server (STYLE.md, "Contracts between processes").
import { z } from 'zod';
import { MIN_CACHE_LIMIT_BYTES, type CacheInfo } from './cache.js';
import type { ErrorInfo } from './errors.js';
import { MAX_INTERVAL_MINUTES, MIN_INTERVAL_MINUTES } from './job-constants.js';
import type { SecondaryStatus, StateInfo } from './states.js';

// Re-exported so that Node code has one module to import; the renderer imports
// job-constants.ts directly, which keeps zod out of its bundle.
export * from './job-constants.js';

/**
 * How a primary is protected. 'device': an image file or a block device, restored whole.
 * 'volume': a folder tree, restorable per file (built on another branch; the contract already
 * carries the mode so the UI can offer what each mode supports).
 */
export const jobModeSchema = z.enum(['device', 'volume']);
export type JobMode = z.infer<typeof jobModeSchema>;

export const quietHoursSchema = z
  .object({
    /** Hours of the local day, 0..23; start > end wraps past midnight (22 → 6). */
    start: z.number().int().min(0).max(23),
    end: z.number().int().min(0).max(23),
  })
  .refine((q) => q.start !== q.end, {
    message: 'quiet hours must start and end at different hours',
  });

export const scheduleSchema = z.object({
  intervalMinutes: z
    .number()
    .int()
    .min(MIN_INTERVAL_MINUTES, { message: 'the interval must be at least 5 minutes' })
    .max(MAX_INTERVAL_MINUTES, { message: 'the interval can be at most a day (1440 minutes)' }),
  quietHours: quietHoursSchema.nullable(),
  /** Take a snapshot as soon as the secondary (re)appears. */
  whenPlugged: z.boolean(),
  pauseOnBattery: z.boolean(),
});
export type Schedule = z.infer<typeof scheduleSchema>;

/**
 * What a job keeps: every state, or the retention policy (Time Machine-like tiers, see
 * README "Retention") applied after each snapshot. Counts are hours, days, weeks.
 */
const count = z.number().int().min(0).max(1_000_000);
export const retentionSchema = z.union([
  z.object({ keep: z.literal('all') }),
  z.object({
    keep: z.literal('policy'),
    keepWithinMs: z.number().int().min(0),
    hourly: count,
    daily: count,
    weekly: count.nullable(),
  }),
]);
export type Retention = z.infer<typeof retentionSchema>;

/** Bytes a job's local cache may take (the secondary away); past it, cached updates collapse. */
export const cacheLimitSchema = z
  .number()
  .int()
  .min(MIN_CACHE_LIMIT_BYTES, { message: 'the cache limit must be at least 1 MiB' })
  .max(2 ** 50);

const pathSchema = z.string().trim().min(1, { message: 'choose a path' }).max(4096);

export const jobConfigSchema = z.object({
  id: z.string().min(1).max(64),
  name: z.string().min(1).max(200),
  mode: jobModeSchema,
  primary: pathSchema,
  /** The archive folder on the secondary. */
  secondary: pathSchema,
  schedule: scheduleSchema,
  retention: retentionSchema,
  /** This job's cache limit; absent or null: the global setting. */
  cacheLimitBytes: cacheLimitSchema.nullable().optional(),
  paused: z.boolean(),
  createdAt: z.string(),
});
export type JobConfig = z.infer<typeof jobConfigSchema>;

export type JobStatus = 'ok' | 'running' | 'secondary-missing' | 'error' | 'paused' | 'new';

/** 'ship': cached updates going to the secondary that came back. */
export type ActivityKind = 'baseline' | 'snapshot' | 'restore' | 'verify' | 'ship';

export interface Activity {
  kind: ActivityKind;
  /** ISO time the activity started. */
  startedAt: string;
  done: number;
  total: number;
  /** Seconds left, estimated from the rate so far; null until there is a rate. */
  etaSeconds: number | null;
}

/** A job as the UI sees it: its configuration and what it is doing. */
export interface JobView {
  config: JobConfig;
  status: JobStatus;
  /** The latest state whose consistency is not 'none', if any. */
  lastConsistent: StateInfo | null;
  stateCount: number;
  activity: Activity | null;
  lastError: ErrorInfo | null;
  /** ISO time of the next scheduled snapshot, or null when none is planned. */
  nextRunAt: string | null;
  /** Why the next snapshot waits ("Paused on battery"), or null. */
  waiting: string | null;
  /** The local cache: what it holds while the secondary is away; null before it was set up. */
  cache: CacheInfo | null;
  /** What the job did lately that people should read (cache, retention), newest last. */
  log: JobLogEntry[];
  /** Fan-out: each extra secondary of the archive and its last state (absent: none). */
  secondaries?: SecondaryStatus[];
}

export interface JobLogEntry {
  /** ISO time. */
  time: string;
  level: 'info' | 'warn';
  message: string;
}
