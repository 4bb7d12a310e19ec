// Job constants the renderer needs, in a module without zod (its bundle stays small).
import type { JobMode, Schedule } from './jobs.js';

export type RestoreWhatKind = 'everything' | 'subtree' | 'file' | 'paths';

/** What each mode can restore; the wizard offers exactly these. */
export const RESTORE_WHAT: Record<JobMode, readonly RestoreWhatKind[]> = {
  device: ['everything'],
  volume: ['everything', 'subtree', 'file', 'paths'],
};

export const MIN_INTERVAL_MINUTES = 5;
export const MAX_INTERVAL_MINUTES = 24 * 60;

export const DEFAULT_SCHEDULE: Schedule = {
  intervalMinutes: 60,
  quietHours: null,
  whenPlugged: true,
  pauseOnBattery: true,
};
