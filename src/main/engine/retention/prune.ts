import type { PruneReport } from '../../../shared/retention.js';
import type { Archive } from '../archive.js';
import { dropStates } from './drop-states.js';
import { pinnedStates } from './pins.js';
import { decideRetention, type RetentionSettings } from './retention-policy.js';

export interface PruneOptions {
  now: Date;
  settings: RetentionSettings;
  dryRun?: boolean;
}

/** Applies the retention policy as of `now`: says what goes and why, and (unless dry) removes it. */
export async function pruneArchive(archive: Archive, options: PruneOptions): Promise<PruneReport> {
  const rows = archive.catalog.states();
  const pins = await pinnedStates(archive.store);
  const timeZone = options.settings.timeZone ?? machineTimeZone();
  const decisions = decideRetention(
    rows.map((r) => ({ id: r.id, timeMs: r.timeMs, pinned: pins.has(r.id) })),
    options.now.getTime(),
    { ...options.settings, timeZone },
  );
  const byId = new Map(rows.map((r) => [r.id, r]));
  const drop = new Set(decisions.filter((d) => !d.keep).map((d) => d.id));
  const bytesBefore = await archiveBytes(archive);
  const runs = options.dryRun ? [] : await dropStates(archive, drop);
  const bytesAfter = runs.length === 0 ? bytesBefore : await archiveBytes(archive);
  return {
    now: options.now.toISOString(),
    dryRun: options.dryRun === true,
    settings: {
      keepWithinMs: options.settings.keepWithinMs,
      hourly: options.settings.hourly,
      daily: options.settings.daily,
      weekly: options.settings.weekly,
      timeZone,
    },
    states: decisions.map((d) => ({
      id: d.id,
      time: byId.get(d.id)?.time ?? '',
      keep: d.keep,
      reason: d.reason,
      pinned: pins.has(d.id),
    })),
    kept: decisions.length - drop.size,
    dropped: drop.size,
    runs: runs.map((r) => ({ states: r.states, into: r.into, parent: r.parent, update: r.update })),
    bytesBefore,
    bytesAfter,
    bytesFreed: bytesBefore - bytesAfter,
  };
}

/** The zone whose days a person here lives by (TZ, else the system's); UTC if the runtime cannot say. */
export function machineTimeZone(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
}

/**
 * Bytes of the live update objects: what the archive's states occupy. The catalog recorded each
 * update's size as written (or as indexed from the object) and objects never change, so only a
 * live update that the catalog does not name (another machine added it since the open) is asked
 * of the store: on S3 each size asked is a HEAD, and prune runs after every point of a watch.
 */
export async function archiveBytes(archive: Archive): Promise<number> {
  const recorded = new Map(archive.catalog.stateUpdates().map((s) => [s.update, s.storedBytes]));
  let n = 0;
  for (const name of await archive.updateNames())
    n += recorded.get(name) ?? (await archive.store.size(name));
  return n;
}
