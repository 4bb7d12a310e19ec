import * as fsp from 'node:fs/promises';
import { TidemarkError } from '../../../shared/errors.js';
import type { SpaceGuardReport } from '../../../shared/retention.js';
import type { Archive } from '../archive.js';
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
 * Drops the oldest states while free space is below `minFree`. Returns null when there is
 * nothing to report (enough space), else what was dropped and whether the threshold was met.
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
  const pins = await pinnedStates(archive.store);
  for (;;) {
    const rows = archive.catalog.states();
    const newest = rows[rows.length - 1];
    const oldest = rows.find((r) => r !== newest && !pins.has(r.id));
    if (!oldest) break;
    await dropStates(archive, new Set([oldest.id]));
    report.dropped.push(oldest.id);
    ({ free } = await measure(archive.dir));
    report.freeAfter = free;
    if (free >= minFreeBytes) {
      report.met = true;
      break;
    }
  }
  return report;
}

/** Both guards around one point, as one report (null: neither had to act). */
export function mergeGuardReports(
  before: SpaceGuardReport | null,
  after: SpaceGuardReport | null,
): SpaceGuardReport | null {
  if (!before) return after;
  if (!after) return before;
  return {
    minFreeBytes: after.minFreeBytes,
    freeBefore: before.freeBefore,
    freeAfter: after.freeAfter,
    dropped: [...before.dropped, ...after.dropped],
    met: after.met,
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

/** One line for people: what the guard did and whether it was enough. */
export function describeSpaceGuard(r: SpaceGuardReport): string {
  const mib = (n: number): string => `${(n / (1 << 20)).toFixed(1)} MiB`;
  const what =
    r.dropped.length > 0
      ? `removed the oldest state(s) ${r.dropped.join(', ')}`
      : 'nothing could be removed';
  return `space guard: free space ${mib(r.freeBefore)} was below ${mib(r.minFreeBytes)}: ${what}; free now ${mib(r.freeAfter)}${r.met ? '' : ' (still below: only the newest and pinned states are left)'}`;
}
