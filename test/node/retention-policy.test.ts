import { describe, expect, it } from 'vitest';
import {
  DEFAULT_RETENTION,
  checkTimeZone,
  decideRetention,
  parseDuration,
  wallClock,
  weekKey,
  type PolicyState,
} from '../../src/main/engine/retention/retention-policy.js';

// Golden cases: fixed states and time in, exact decisions and reasons out.

const NOW = Date.parse('2026-11-26T12:00:00Z');
const at = (iso: string, id: number, pinned = false): PolicyState => ({
  id,
  timeMs: Date.parse(iso),
  pinned,
});
const STATES: PolicyState[] = [
  at('2026-09-01T08:00:00Z', 0),
  at('2026-09-03T09:00:00Z', 1),
  at('2026-10-20T10:00:00Z', 2),
  at('2026-11-05T10:00:00Z', 3, true),
  at('2026-11-05T18:00:00Z', 4),
  at('2026-11-20T09:15:00Z', 5),
  at('2026-11-20T09:45:00Z', 6),
  at('2026-11-25T13:00:00Z', 7),
  at('2026-11-25T13:30:00Z', 8),
  at('2026-11-26T11:59:00Z', 9),
];

describe('retention policy (golden)', () => {
  it('Time Machine-like defaults', () => {
    expect(decideRetention(STATES, NOW, DEFAULT_RETENTION)).toEqual([
      { id: 0, keep: false, reason: 'weekly 2026-W36 keeps state 1' },
      { id: 1, keep: true, reason: 'weekly 2026-W36' },
      { id: 2, keep: true, reason: 'weekly 2026-W43' },
      { id: 3, keep: true, reason: 'pinned' },
      { id: 4, keep: true, reason: 'daily 2026-11-05' },
      { id: 5, keep: false, reason: 'hourly 2026-11-20T09 keeps state 6' },
      { id: 6, keep: true, reason: 'hourly 2026-11-20T09' },
      { id: 7, keep: true, reason: 'within 24 h' },
      { id: 8, keep: true, reason: 'within 24 h' },
      { id: 9, keep: true, reason: 'newest' },
    ]);
  });

  it('shorter windows and a weekly limit', () => {
    const settings = { keepWithinMs: 3_600_000, hourly: 24, daily: 7, weekly: 4 };
    expect(decideRetention(STATES, NOW, settings)).toEqual([
      { id: 0, keep: false, reason: 'beyond weekly' },
      { id: 1, keep: false, reason: 'beyond weekly' },
      { id: 2, keep: false, reason: 'beyond weekly' },
      { id: 3, keep: true, reason: 'pinned' },
      { id: 4, keep: true, reason: 'weekly 2026-W45' },
      { id: 5, keep: false, reason: 'daily 2026-11-20 keeps state 6' },
      { id: 6, keep: true, reason: 'daily 2026-11-20' },
      { id: 7, keep: false, reason: 'hourly 2026-11-25T13 keeps state 8' },
      { id: 8, keep: true, reason: 'hourly 2026-11-25T13' },
      { id: 9, keep: true, reason: 'newest' },
    ]);
  });

  it('as of a later time the same states thin out further (--now)', () => {
    const later = Date.parse('2027-03-01T00:00:00Z');
    const decisions = decideRetention(STATES, later, DEFAULT_RETENTION);
    expect(decisions.filter((d) => d.keep).map((d) => [d.id, d.reason])).toEqual([
      [1, 'weekly 2026-W36'],
      [2, 'weekly 2026-W43'],
      [3, 'pinned'],
      [4, 'weekly 2026-W45'],
      [6, 'weekly 2026-W47'],
      [9, 'newest'],
    ]);
  });

  it('never drops the newest state, even beyond every window; nothing in, nothing out', () => {
    const none = { keepWithinMs: 0, hourly: 0, daily: 0, weekly: 0 };
    expect(
      decideRetention([at('2020-01-01T00:00:00Z', 4), at('2020-01-02T00:00:00Z', 5)], NOW, none),
    ).toEqual([
      { id: 4, keep: false, reason: 'beyond weekly' },
      { id: 5, keep: true, reason: 'newest' },
    ]);
    expect(decideRetention([], NOW, DEFAULT_RETENTION)).toEqual([]);
  });

  it('ISO weeks across a year boundary and durations', () => {
    expect(weekKey(Date.parse('2027-01-01T12:00:00Z'))).toBe('2026-W53');
    expect(weekKey(Date.parse('2024-12-30T00:00:00Z'))).toBe('2025-W01');
    expect(weekKey(Date.parse('2026-11-26T12:00:00Z'))).toBe('2026-W48');
    expect(parseDuration('24h')).toBe(86_400_000);
    expect(parseDuration('90m')).toBe(5_400_000);
    expect(parseDuration('2d')).toBe(172_800_000);
    expect(parseDuration('1w')).toBe(604_800_000);
    expect(parseDuration('24')).toBeUndefined();
    expect(parseDuration('-1h')).toBeUndefined();
  });

  it("buckets are the zone's wall-clock hours, days and weeks", () => {
    // 23:30 and 01:30 in Tokyo: one UTC day, two Tokyo days.
    const states = [
      at('2026-11-20T14:30:00Z', 1),
      at('2026-11-20T16:30:00Z', 2),
      at('2026-12-10T00:00:00Z', 3),
    ];
    const now = Date.parse('2026-12-10T12:00:00Z');
    expect(decideRetention(states, now, DEFAULT_RETENTION)).toEqual([
      { id: 1, keep: false, reason: 'daily 2026-11-20 keeps state 2' },
      { id: 2, keep: true, reason: 'daily 2026-11-20' },
      { id: 3, keep: true, reason: 'newest' },
    ]);
    expect(decideRetention(states, now, { ...DEFAULT_RETENTION, timeZone: 'Asia/Tokyo' })).toEqual([
      { id: 1, keep: true, reason: 'daily 2026-11-20' },
      { id: 2, keep: true, reason: 'daily 2026-11-21' },
      { id: 3, keep: true, reason: 'newest' },
    ]);
    // Sunday evening in UTC is already Monday in Tokyo: the next ISO week.
    expect(weekKey(Date.parse('2026-11-29T20:00:00Z'))).toBe('2026-W48');
    expect(weekKey(Date.parse('2026-11-29T20:00:00Z'), 'Asia/Tokyo')).toBe('2026-W49');
    // Midnight is hour 00 of the new day, not hour 24 of the old one.
    expect(wallClock('Asia/Tokyo')(Date.parse('2026-11-20T15:00:00Z'))).toEqual({
      year: 2026,
      month: 11,
      day: 21,
      hour: 0,
    });
  });

  it('the hour repeated when clocks go back is one bucket (New York, 2026-11-01)', () => {
    // 01:30 EDT and 01:30 EST, an hour apart in UTC.
    const states = [
      at('2026-11-01T05:30:00Z', 1),
      at('2026-11-01T06:30:00Z', 2),
      at('2026-11-02T23:59:00Z', 3),
    ];
    const now = Date.parse('2026-11-03T00:00:00Z');
    const settings = { ...DEFAULT_RETENTION, keepWithinMs: 3_600_000 };
    expect(
      decideRetention(states, now, { ...settings, timeZone: 'America/New_York' }).map(
        (d) => d.reason,
      ),
    ).toEqual(['hourly 2026-11-01T01 keeps state 2', 'hourly 2026-11-01T01', 'newest']);
    expect(decideRetention(states, now, settings).map((d) => d.reason)).toEqual([
      'hourly 2026-11-01T05',
      'hourly 2026-11-01T06',
      'newest',
    ]);
  });

  it('a zone is checked and spelled canonically', () => {
    expect(checkTimeZone('europe/berlin')).toBe('Europe/Berlin');
    expect(checkTimeZone('UTC')).toBe('UTC');
    expect(checkTimeZone('Mars/Base')).toBeUndefined();
  });
});
