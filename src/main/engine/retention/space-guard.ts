import * as fsp from 'node:fs/promises';
import { TidemarkError } from '../../../shared/errors.js';
import { mib, type SpaceGuardReport } from '../../../shared/retention.js';
import type { Archive } from '../archive.js';
import type { StateRow } from '../catalog.js';
import { dropStates } from './drop-states.js';
import { pinnedStates } from './pins.js';

/**
 * The space guard: when the secondary's free space is below a threshold, the oldest states go
 * first (never the newest, never a pinned one) until it is not, or nothing more may go. What it
 * did is returned for the caller to report: it is never silent.
 *
 * The threshold is kept in the archive as an immutable object `settings/NNNNNNNNNN.json`
 * (`{"minFree": "10%"}`); a change writes the next number, then deletes the older ones, so a
 * crash leaves one or the other and never none.
 */
export type MinFree = { bytes: number } | { percent: number };

const SETTINGS_PREFIX = 'settings/';
const UNITS: Record<string, number> = { '': 1, K: 1024, M: 1 << 20, G: 1 << 30, T: 2 ** 40 };

/** Parses `10%`, `500M`, `2G`, `1048576` (binary units; a trailing B or iB is allowed). */
export function parseMinFree(text: string): MinFree {
  const pct = /^(\d+(?:\.\d+)?)%$/.exec(text.trim());
  if (pct) {
    const percent = Number(pct[1]);
    if (percent < 100) return { percent };
  }
  const size = /^(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?$/i.exec(text.trim());
  if (!pct && size)
    return { bytes: Math.floor(Number(size[1]) * (UNITS[(size[2] ?? '').toUpperCase()] ?? 1)) };
  throw new TidemarkError(
    'usage',
    `--min-free needs a size (500M, 2G) or a percentage below 100 (10%), got ${text}`,
  );
}

export function formatMinFree(m: MinFree): string {
  return 'percent' in m ? `${m.percent}%` : String(m.bytes);
}

async function settingsNames(archive: Archive): Promise<string[]> {
  return (await archive.store.list(SETTINGS_PREFIX)).filter((n) =>
    /^settings\/\d{10}\.json$/.test(n),
  );
}

/** The threshold stored in the archive, if any. */
export async function storedMinFree(archive: Archive): Promise<MinFree | undefined> {
  const names = await settingsNames(archive);
  const last = names[names.length - 1];
  if (!last) return undefined;
  const bytes = await archive.store.read(last, 0, await archive.store.size(last));
  try {
    const parsed = JSON.parse(bytes.toString('utf8')) as { minFree?: string | null };
    return parsed.minFree ? parseMinFree(parsed.minFree) : undefined;
  } catch {
    throw new TidemarkError(
      'archive.corrupt',
      `${last} is damaged (not the settings it should be)`,
    );
  }
}

/** Stores the threshold (null: none) in the archive. Holder of the lock only. */
export async function storeMinFree(archive: Archive, minFree: MinFree | null): Promise<void> {
  const names = await settingsNames(archive);
  const last = names[names.length - 1];
  const next = last ? Number(/(\d{10})/.exec(last)?.[1]) + 1 : 0;
  const writer = await archive.store.create(
    `${SETTINGS_PREFIX}${String(next).padStart(10, '0')}.json`,
  );
  try {
    await writer.write(
      Buffer.from(JSON.stringify({ minFree: minFree ? formatMinFree(minFree) : null }) + '\n'),
    );
    await writer.commit();
  } catch (err) {
    await writer.abort();
    throw err;
  }
  for (const old of names) await archive.store.delete(old);
}

/** Free and total bytes of the filesystem holding the archive. */
export async function freeSpace(dir: string): Promise<{ free: number; total: number }> {
  const s = await fsp.statfs(dir);
  return { free: s.bavail * s.bsize, total: s.blocks * s.bsize };
}

/**
 * Room beside an update's blocks that writing it takes (its index, the catalog's journal): an
 * estimate that must fit in the free space is compared with what is free less this.
 */
const WRITE_SLACK = 1 << 20;

/**
 * Drops the oldest states while free space is below `minFree`. Returns null when there is
 * nothing to report (enough space), else what was dropped and whether the threshold was met.
 *
 * It never throws because freeing failed for lack of room (the disk is nearly full exactly when
 * it runs): a collapse writes its result before it deletes anything and a failed write leaves no
 * partial object, so the archive is as it was; the report says so and the point goes on.
 */
export async function guardSpace(
  archive: Archive,
  minFree: MinFree,
  measure: (dir: string) => Promise<{ free: number; total: number }> = freeSpace,
): Promise<SpaceGuardReport | null> {
  const first = await measure(archive.dir);
  let free = first.free;
  const total = first.total;
  const minFreeBytes =
    'bytes' in minFree ? minFree.bytes : Math.ceil((total * minFree.percent) / 100);
  if (free >= minFreeBytes) return null;
  const report: SpaceGuardReport = {
    minFreeBytes,
    freeBefore: free,
    freeAfter: free,
    dropped: [],
    met: false,
  };
  const note = (line: string): void => {
    (report.notes ??= []).push(line);
  };
  const pins = await pinnedStates(archive.store);
  // Set once integrating into the base did not fit: it is not tried again in this run.
  let baseFailed = false;
  let keptNoted = false;
  for (;;) {
    const plan = planDrop(archive.catalog.states(), pins, minFreeBytes - free, free, baseFailed);
    if ('reason' in plan) {
      report.reason = plan.reason;
      break;
    }
    if (plan.keptBase && !keptNoted) {
      keptNoted = true;
      note(plan.keptBase);
    }
    let stop = false;
    try {
      await dropStates(archive, new Set(plan.ids), (run) =>
        report.dropped.push(...run.states.filter((id) => id !== run.into)),
      );
    } catch (err) {
      if (!(err instanceof TidemarkError) || err.code !== 'archive.full') throw err;
      if (plan.integrates && !baseFailed) {
        baseFailed = true;
        note(
          `integrating state ${plan.ids[0]} into the base ran out of space (${err.message}): the base was left as it was`,
        );
      } else {
        stop = true;
        report.reason = `removing state(s) ${plan.ids.join(', ')} ran out of space (${err.message}): they were left as they were`;
      }
    }
    report.dropped.sort((a, b) => a - b);
    ({ free } = await measure(archive.dir));
    report.freeAfter = free;
    if (free >= minFreeBytes) {
      report.met = true;
      delete report.reason;
      break;
    }
    if (stop) break;
  }
  return report;
}

interface DropPlan {
  /** The states to drop in one `dropStates` call, oldest first. */
  ids: number[];
  /** Whether the first of them is the base's state (dropping it rewrites the base). */
  integrates: boolean;
  /** Set when the base's state was passed over because integrating it would not fit. */
  keptBase?: string;
}

/**
 * The oldest states to drop next: as many as should free `need` bytes, dropped in one call so
 * that the base is rewritten once rather than once per state. A state holds alone at most its own
 * stored bytes and at most what its successor overwrote (about the successor's size); the guard
 * measures again after each call, so a low estimate costs another round, not a wrong drop.
 *
 * Integrating into the base writes a new base (about the old one's size) before the old one goes;
 * when that does not fit in `free`, the oldest later states go instead: collapsing one into its
 * successor writes only the two updates' live blocks and frees what it held alone.
 */
function planDrop(
  rows: StateRow[],
  pins: ReadonlySet<number>,
  need: number,
  free: number,
  baseFailed: boolean,
): DropPlan | { reason: string } {
  const newest = rows[rows.length - 1];
  const base = rows[0];
  let candidates = rows.filter((r) => r !== newest && !pins.has(r.id));
  let keptBase: string | undefined;
  if (base && candidates[0] === base) {
    const cost = base.storedBytes + WRITE_SLACK;
    if (baseFailed || cost > free) {
      candidates = candidates.slice(1);
      // After a failed integration its own note already says why the base stays.
      if (!baseFailed)
        keptBase = `state ${base.id} was kept: integrating it into the base needs about ${mib(cost)} free and there is ${mib(free)}, so the oldest later states went first`;
      if (candidates.length === 0)
        return {
          reason: `only the newest and pinned states and state ${base.id} are left, and integrating state ${base.id} into the base does not fit in the free space`,
        };
    }
  }
  if (candidates.length === 0) return { reason: 'only the newest and pinned states are left' };
  const integrates = candidates[0] === base;
  const ids: number[] = [];
  let freed = 0;
  let cost = integrates ? (base as StateRow).storedBytes : 0;
  // Runs of consecutive states are one collapse each: a state that extends the run before it
  // adds only its successor's blocks to what that collapse writes, and nothing to a new base
  // (which stays about the primary's size).
  let last = -2;
  let inBaseRun = false;
  for (const row of candidates) {
    const at = rows.indexOf(row);
    const next = rows[at + 1] as StateRow;
    const extendsRun = at === last + 1;
    inBaseRun = row === base || (extendsRun && inBaseRun);
    const writes = inBaseRun
      ? 0
      : extendsRun
        ? next.storedBytes
        : row.storedBytes + next.storedBytes;
    if (ids.length > 0 && cost + writes + WRITE_SLACK > free) break;
    last = at;
    ids.push(row.id);
    cost += writes;
    freed += Math.min(row.storedBytes, next.storedBytes);
    if (freed >= need) break;
  }
  return { ids, integrates, ...(keptBase ? { keptBase } : {}) };
}

/** The guards around one point (and around shipping cached updates), as one report. */
export function mergeGuardReports(
  ...reports: Array<SpaceGuardReport | null>
): SpaceGuardReport | null {
  const acted = reports.filter((r): r is SpaceGuardReport => r !== null);
  const first = acted[0];
  const last = acted[acted.length - 1];
  if (!first || !last) return null;
  if (acted.length === 1) return first;
  const notes = [...new Set(acted.flatMap((r) => r.notes ?? []))];
  return {
    minFreeBytes: last.minFreeBytes,
    freeBefore: first.freeBefore,
    freeAfter: last.freeAfter,
    dropped: acted.flatMap((r) => r.dropped),
    met: last.met,
    ...(last.reason ? { reason: last.reason } : {}),
    ...(notes.length > 0 ? { notes } : {}),
  };
}

/**
 * The threshold for this run: the one given (then stored in the archive for the next runs), else
 * the stored one. The caller holds the lock.
 */
export async function minFreeFor(
  archive: Archive,
  given: MinFree | undefined,
): Promise<MinFree | undefined> {
  if (given) {
    const stored = await storedMinFree(archive);
    if (!stored || formatMinFree(stored) !== formatMinFree(given))
      await storeMinFree(archive, given);
    return given;
  }
  return storedMinFree(archive);
}

/**
 * Runs `capture` (one point) between two space guards: before it, to make room for the update;
 * after it, because the update used some. Returns the capture's result and one report.
 */
export async function withSpaceGuard<T>(
  archive: Archive,
  given: MinFree | undefined,
  capture: () => Promise<T>,
): Promise<{ result: T; spaceGuard: SpaceGuardReport | null }> {
  const minFree = await minFreeFor(archive, given);
  const before = minFree ? await guardSpace(archive, minFree) : null;
  const result = await capture();
  const after = minFree ? await guardSpace(archive, minFree) : null;
  return { result, spaceGuard: mergeGuardReports(before, after) };
}
