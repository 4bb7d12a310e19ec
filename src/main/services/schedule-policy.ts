// When a job's next snapshot is due and why it waits: a pure function of the schedule, the
// conditions the desktop shell reports (battery, secondary present) and the clock.
import type { Schedule } from '../../shared/jobs.js';

export interface ScheduleInput {
  schedule: Schedule;
  jobPaused: boolean;
  /** The global pause (tray "Pause for 1 hour"), if any. */
  pausedUntil: Date | null;
  /** The later of the last state and the last attempt; null before the baseline. */
  lastRun: Date | null;
  onBattery: boolean;
  secondaryPresent: boolean;
  now: Date;
}

export interface ScheduleDecision {
  /** When the next snapshot is planned, or null when nothing is planned (paused). */
  dueAt: Date | null;
  /** Run one now. */
  runNow: boolean;
  /** Why the job is not running although it is due, for people. */
  waiting: string | null;
}

export function inQuietHours(schedule: Schedule, at: Date): boolean {
  const q = schedule.quietHours;
  if (!q) return false;
  const h = at.getHours();
  return q.start < q.end ? h >= q.start && h < q.end : h >= q.start || h < q.end;
}

/** The first moment at or after `at` outside the quiet hours. */
export function afterQuietHours(schedule: Schedule, at: Date): Date {
  const q = schedule.quietHours;
  if (!q || !inQuietHours(schedule, at)) return at;
  const end = new Date(at);
  end.setMinutes(0, 0, 0);
  end.setHours(q.end);
  if (end.getTime() <= at.getTime()) end.setDate(end.getDate() + 1);
  return end;
}

function clock(d: Date): string {
  return `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`;
}

export function decide(input: ScheduleInput): ScheduleDecision {
  const { schedule, now } = input;
  if (input.jobPaused) return { dueAt: null, runNow: false, waiting: 'Paused' };
  const interval = schedule.intervalMinutes * 60_000;
  const planned = input.lastRun ? new Date(input.lastRun.getTime() + interval) : now;
  const dueAt = afterQuietHours(schedule, planned);
  const due = dueAt.getTime() <= now.getTime();
  if (input.pausedUntil && input.pausedUntil.getTime() > now.getTime()) {
    return { dueAt, runNow: false, waiting: `Paused until ${clock(input.pausedUntil)}` };
  }
  if (!input.secondaryPresent) {
    return { dueAt, runNow: false, waiting: 'Backup disk not connected' };
  }
  if (input.onBattery && schedule.pauseOnBattery) {
    return { dueAt, runNow: false, waiting: 'Paused on battery' };
  }
  if (!due && inQuietHours(schedule, now) && planned.getTime() <= now.getTime()) {
    return { dueAt, runNow: false, waiting: 'Waiting for the quiet hours to end' };
  }
  return { dueAt, runNow: due, waiting: null };
}
