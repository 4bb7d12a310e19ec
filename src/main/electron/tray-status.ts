// What the tray says: one status for all jobs and the tooltip, from the jobs' views.
import { ago } from '../../shared/human-time.js';
import type { JobView } from '../../shared/jobs.js';
import type { TrayStatus } from './tray-icon.js';

export function trayStatus(jobs: JobView[]): TrayStatus {
  if (jobs.some((j) => j.status === 'error')) return 'error';
  if (jobs.some((j) => j.status === 'running')) return 'running';
  if (jobs.some((j) => j.status === 'secondary-missing')) return 'secondary-missing';
  return 'ok';
}

function clock(d: Date): string {
  return `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`;
}

/** "Last consistent state: 14:05 (3 min ago)", and why the next one waits, if it does. */
export function trayTooltip(jobs: JobView[], now: Date): string {
  const times = jobs
    .map((j) => j.lastConsistent?.time)
    .filter((t): t is string => t !== undefined)
    .sort();
  const latest = times.at(-1);
  const lines = [
    latest
      ? `Last consistent state: ${clock(new Date(latest))} (${ago(latest, now)})`
      : 'No consistent state yet',
  ];
  for (const job of jobs) {
    if (job.lastError) lines.push(`${job.config.name}: ${job.lastError.message}`);
    else if (job.waiting) lines.push(`${job.config.name}: ${job.waiting}`);
    else if (job.status === 'secondary-missing' && job.cache) {
      const n = job.cache.pending;
      lines.push(`${job.config.name}: secondary missing, ${n} update${n === 1 ? '' : 's'} cached`);
    }
  }
  return lines.join('\n');
}
