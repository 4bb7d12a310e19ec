// What a snapshot's cache and retention results mean for people: the lines of a job's log, and
// which of them raise a notification (a full cache collapsing states is never silent).
import type { SnapshotOutcome } from '../../shared/api.js';
import type { PruneReport } from '../../shared/retention.js';
import { formatBytes } from '../cli/format-human.js';

export interface Note {
  level: 'info' | 'warn';
  message: string;
  /** Raise a desktop notification too. */
  notify?: boolean;
}

const plural = (n: number, one: string): string => `${n} ${one}${n === 1 ? '' : 's'}`;

export function cacheOutcomeNotes(o: Partial<SnapshotOutcome>): Note[] {
  const notes: Note[] = [];
  if (o.shipped && o.shipped.length > 0)
    notes.push({
      level: 'info',
      message: `secondary back: shipped ${plural(o.shipped.length, 'cached update')} in order (state${o.shipped.length === 1 ? '' : 's'} ${o.shipped.join(', ')})`,
    });
  if (o.location === 'cache') {
    const pending = o.cache?.pending ?? 0;
    notes.push({
      level: 'warn',
      message:
        `secondary missing (${o.unavailable ?? 'not reachable'}): ` +
        (o.changed && 'state' in o && o.state
          ? `state ${o.state.id} kept in the local cache`
          : 'nothing changed') +
        `, ${plural(pending, 'update')} cached`,
    });
  }
  for (const c of o.collapsed ?? [])
    notes.push({
      level: 'warn',
      notify: true,
      message: `local cache full: states ${c.removedStates.join(', ')} collapsed into state ${c.to} (${formatBytes(c.bytesBefore)} -> ${formatBytes(c.bytesAfter)}; no change lost)`,
    });
  if (o.cache && o.cache.bytes > o.cache.limitBytes)
    notes.push({
      level: 'warn',
      notify: true,
      message: `local cache over its limit: ${formatBytes(o.cache.bytes)} of ${formatBytes(o.cache.limitBytes)} (one update that cannot be split; nothing was dropped)`,
    });
  return notes;
}

/** One line per dropped state with the policy's reason, after a summary. */
export function pruneNotes(r: PruneReport): Note[] {
  if (r.dropped === 0) return [];
  return [
    {
      level: 'info',
      message: `retention removed ${plural(r.dropped, 'state')}, ${formatBytes(r.bytesFreed)} freed`,
    },
    ...r.states
      .filter((s) => !s.keep)
      .map((s) => ({ level: 'info' as const, message: `state ${s.id} dropped: ${s.reason}` })),
  ];
}
