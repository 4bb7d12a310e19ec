// What the tray says: one status for all jobs and the tooltip, from the jobs' views.
import { ago } from '../../shared/human-time.js';
import type { JobView } from '../../shared/jobs.js';
import type { TrayStatus } from './tray-icon.js';

/**
 * Snapshots may be skipped now and then (battery, quiet hours, the disk away for a day trip);
 * a job with no consistent state for this many of its intervals needs attention.
 */
export const LATE_AFTER_INTERVALS = 3;

/** True when a job that should be taking snapshots has had none for too long. */
export function isLate(job: JobView, now: Date): boolean {
  if (job.config.paused || job.status === 'new' || job.status === 'paused') return false;
  const last = job.lastConsistent?.time;
  if (last === undefined) return false;
  const lateMs = LATE_AFTER_INTERVALS * job.config.schedule.intervalMinutes * 60_000;
  return now.getTime() - new Date(last).getTime() > lateMs;
}

/** The worst job decides the colour: one failing or late job is not hidden by healthy ones. */
export function trayStatus(jobs: JobView[], now: Date): TrayStatus {
  if (jobs.some((j) => j.status === 'error' || isLate(j, now))) return 'error';
  if (jobs.some((j) => j.status === 'running')) return 'running';
  if (jobs.some((j) => j.status === 'secondary-missing')) return 'secondary-missing';
  return 'ok';
}

function clock(d: Date): string {
  return `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`;
}

/**
 * "Last consistent state: 14:05 (3 min ago)" of the job furthest behind (the newest job's time
 * would hide a stale one), and why the next state waits, if it does.
 */
export function trayTooltip(jobs: JobView[], now: Date): string {
  const withState = jobs
    .filter((j) => j.lastConsistent !== null)
    .sort(
      (a, b) => Date.parse(a.lastConsistent?.time ?? '') - Date.parse(b.lastConsistent?.time ?? ''),
    );
  const oldest = withState[0];
  const time = oldest?.lastConsistent?.time;
  const lines = [
    time
      ? `Last consistent state: ${clock(new Date(time))} (${ago(time, now)})`
      : 'No consistent state yet',
  ];
  if (oldest && withState.length > 1)
    lines.push(`${oldest.config.name}, the furthest behind of ${withState.length} jobs`);
  for (const job of jobs) {
    if (job.lastConsistent === null && oldest)
      lines.push(`${job.config.name}: no consistent state yet`);
    if (job.lastError) lines.push(`${job.config.name}: ${job.lastError.message}`);
    else if (job.waiting) lines.push(`${job.config.name}: ${job.waiting}`);
    else if (job.status === 'secondary-missing' && job.cache) {
      const n = job.cache.pending;
      lines.push(`${job.config.name}: secondary missing, ${n} update${n === 1 ? '' : 's'} cached`);
    }
  }
  return lines.join('\n');
}
