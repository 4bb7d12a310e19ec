/**
 * Which states retention keeps, and why: a pure function of the states, the time and the
 * settings (no clock, no I/O), so it is tested against golden cases and `prune --now` can ask
 * "what if". Deleting is elsewhere (prune.ts).
 *
 * Tiers, Time Machine-like: every state younger than `keepWithinMs`; then, for states younger
 * than `hourly` hours, the newest state of each hour; younger than `daily` days, the newest of
 * each day; younger than `weekly` weeks (null: forever), the newest of each ISO week. Buckets are
 * hours, days and ISO weeks of the wall clock in `timeZone` (a person's "one per day" means their
 * days, not UTC's); the zone is an argument, never read from the machine here, so the answer is
 * the same wherever it is computed. The newest state and pinned states are always kept.
 */

export interface RetentionSettings {
  keepWithinMs: number;
  hourly: number;
  daily: number;
  /** Weeks kept with one state each; null keeps one a week forever. */
  weekly: number | null;
  /** IANA zone whose hours, days and weeks are the buckets; absent: the machine's (see prune.ts). */
  timeZone?: string;
}

export const HOUR_MS = 3_600_000;
export const DAY_MS = 24 * HOUR_MS;
export const WEEK_MS = 7 * DAY_MS;

export const DEFAULT_RETENTION: RetentionSettings = {
  keepWithinMs: DAY_MS,
  hourly: 7 * 24,
  daily: 30,
  weekly: null,
};

export interface PolicyState {
  id: number;
  timeMs: number;
  pinned: boolean;
}

export interface RetentionDecision {
  id: number;
  keep: boolean;
  reason: string;
}

interface Tier {
  name: 'hourly' | 'daily' | 'weekly';
  windowMs: number;
  bucket: (timeMs: number) => string;
}

export function decideRetention(
  states: readonly PolicyState[],
  nowMs: number,
  settings: RetentionSettings,
): RetentionDecision[] {
  const clock = wallClock(settings.timeZone ?? 'UTC');
  const tiers: Tier[] = [
    { name: 'hourly', windowMs: settings.hourly * HOUR_MS, bucket: (t) => hourKey(clock(t)) },
    { name: 'daily', windowMs: settings.daily * DAY_MS, bucket: (t) => dayKey(clock(t)) },
    {
      name: 'weekly',
      windowMs: settings.weekly === null ? Infinity : settings.weekly * WEEK_MS,
      bucket: (t) => isoWeek(clock(t)),
    },
  ];
  // Named in "beyond …": the tier reaching furthest back (the coarsest one on a tie).
  const widest = tiers.reduce((w, t) => (t.windowMs >= w.windowMs ? t : w));
  // The newest is the last state recorded (highest id), even if the clock went back meanwhile.
  const newest = states.reduce<PolicyState | undefined>(
    (best, s) => (best === undefined || s.id > best.id ? s : best),
    undefined,
  );
  // The representative of each bucket: its newest state.
  const placed = new Map<number, { tier: Tier; key: string } | null>();
  const winners = new Map<string, PolicyState>();
  for (const s of states) {
    const age = nowMs - s.timeMs;
    if (age < settings.keepWithinMs) {
      placed.set(s.id, null);
      continue;
    }
    const tier = tiers.find((t) => age < t.windowMs);
    if (!tier) continue;
    const key = tier.bucket(s.timeMs);
    placed.set(s.id, { tier, key });
    const slot = `${tier.name} ${key}`;
    const best = winners.get(slot);
    if (!best || newer(s, best)) winners.set(slot, s);
  }
  const withinLabel = `within ${formatDuration(settings.keepWithinMs)}`;
  return [...states]
    .sort((a, b) => a.id - b.id)
    .map((s) => {
      const place = placed.get(s.id);
      let keep: boolean;
      let reason: string;
      if (place === null) {
        keep = true;
        reason = withinLabel;
      } else if (place === undefined) {
        keep = false;
        reason = `beyond ${widest.name}`;
      } else {
        const slot = `${place.tier.name} ${place.key}`;
        const best = winners.get(slot) as PolicyState;
        keep = best.id === s.id;
        reason = keep ? slot : `${slot} keeps state ${best.id}`;
      }
      if (s.pinned) return { id: s.id, keep: true, reason: 'pinned' };
      if (s.id === newest?.id) return { id: s.id, keep: true, reason: 'newest' };
      return { id: s.id, keep, reason };
    });
}

function newer(a: PolicyState, b: PolicyState): boolean {
  return a.timeMs > b.timeMs || (a.timeMs === b.timeMs && a.id > b.id);
}

/** A wall-clock reading: year, month (1-12), day and hour (0-23) in some zone. */
interface WallTime {
  year: number;
  month: number;
  day: number;
  hour: number;
}

/**
 * Reads instants on the wall clock of `timeZone`. Throws a RangeError for a zone the runtime does
 * not know (callers check a user's zone with `checkTimeZone` first).
 */
export function wallClock(timeZone: string): (t: number) => WallTime {
  if (timeZone === 'UTC') {
    return (t) => {
      const d = new Date(t);
      return {
        year: d.getUTCFullYear(),
        month: d.getUTCMonth() + 1,
        day: d.getUTCDate(),
        hour: d.getUTCHours(),
      };
    };
  }
  const format = new Intl.DateTimeFormat('en-US', {
    timeZone,
    year: 'numeric',
    month: 'numeric',
    day: 'numeric',
    hour: 'numeric',
    hourCycle: 'h23',
  });
  return (t) => {
    const w: WallTime = { year: 0, month: 0, day: 0, hour: 0 };
    for (const part of format.formatToParts(t))
      if (
        part.type === 'year' ||
        part.type === 'month' ||
        part.type === 'day' ||
        part.type === 'hour'
      )
        w[part.type] = Number(part.value);
    return w;
  };
}

/** The zone, canonically spelled, or undefined when the runtime does not know it. */
export function checkTimeZone(timeZone: string): string | undefined {
  try {
    return new Intl.DateTimeFormat('en-US', { timeZone }).resolvedOptions().timeZone;
  } catch {
    return undefined;
  }
}

const pad = (n: number, width = 2): string => String(n).padStart(width, '0');

function dayKey(w: WallTime): string {
  return `${pad(w.year, 4)}-${pad(w.month)}-${pad(w.day)}`;
}

function hourKey(w: WallTime): string {
  return `${dayKey(w)}T${pad(w.hour)}`;
}

/** ISO 8601 week of a wall-clock date, e.g. 2026-W48 (weeks start on Monday; week 1 holds the year's first Thursday). */
function isoWeek(w: WallTime): string {
  const date = Date.UTC(w.year, w.month - 1, w.day);
  const day = (new Date(date).getUTCDay() + 6) % 7;
  const thursday = date + (3 - day) * DAY_MS;
  const year = new Date(thursday).getUTCFullYear();
  const week = Math.floor((thursday - Date.UTC(year, 0, 1)) / WEEK_MS) + 1;
  return `${year}-W${pad(week)}`;
}

/** The ISO week of an instant in `timeZone` (UTC unless said). */
export function weekKey(t: number, timeZone = 'UTC'): string {
  return isoWeek(wallClock(timeZone)(t));
}

/** 24 h, 90 min, 2 d, 1 w: the largest unit that divides the duration. */
export function formatDuration(ms: number): string {
  const units: Array<[string, number]> = [
    ['w', WEEK_MS],
    ['d', DAY_MS],
    ['h', HOUR_MS],
    ['min', 60_000],
    ['s', 1000],
  ];
  if (ms === DAY_MS) return '24 h';
  for (const [unit, size] of units) if (ms % size === 0 && ms > 0) return `${ms / size} ${unit}`;
  return `${ms} ms`;
}

/** Parses a duration such as 24h, 90m, 2d, 1w, 30s (a unit is required). */
export function parseDuration(text: string): number | undefined {
  const m = /^(\d+)(s|m|min|h|d|w)$/.exec(text.trim());
  if (!m) return undefined;
  const n = Number(m[1]);
  const unit = m[2] as string;
  const size =
    unit === 's'
      ? 1000
      : unit === 'm' || unit === 'min'
        ? 60_000
        : unit === 'h'
          ? HOUR_MS
          : unit === 'd'
            ? DAY_MS
            : WEEK_MS;
  return n * size;
}
