// What the tray says, from the jobs' views (the Electron Tray itself cannot run here).
import { describe, expect, it } from 'vitest';
import { trayStatus, trayTooltip } from '../../src/main/electron/tray-status.js';
import { DEFAULT_SCHEDULE, type JobView } from '../../src/shared/jobs.js';

function job(patch: Partial<JobView>, name = 'laptop'): JobView {
  return {
    config: {
      id: name,
      name,
      mode: 'device',
      primary: '/dev/sda',
      secondary: '/media/usb/tidemark',
      schedule: DEFAULT_SCHEDULE,
      retention: { keep: 'all' },
      paused: false,
      createdAt: '2026-11-26T10:00:00.000Z',
    },
    status: 'ok',
    lastConsistent: null,
    stateCount: 0,
    activity: null,
    lastError: null,
    nextRunAt: null,
    waiting: null,
    cache: null,
    log: [],
    ...patch,
  };
}

const state = (time: string) => ({
  id: 3,
  time,
  changedBlocks: 1,
  storedBytes: 1,
  stateHash: 'ab',
  consistency: 'quiescent' as const,
});

describe('tray', () => {
  it('says the last consistent state with its time and age', () => {
    const now = new Date(2026, 10, 26, 14, 8);
    const t = new Date(2026, 10, 26, 14, 5).toISOString();
    expect(trayTooltip([job({ lastConsistent: state(t) })], now)).toBe(
      'Last consistent state: 14:05 (3 min ago)',
    );
  });

  it('says why a job waits or what failed', () => {
    const now = new Date(2026, 10, 26, 14, 8);
    const t = new Date(2026, 10, 26, 12, 8).toISOString();
    const jobs = [
      job({ lastConsistent: state(t), waiting: 'Backup disk not connected' }),
      job(
        {
          lastError: { code: 'archive.full', message: 'the backup disk is full', retryable: false },
        },
        'nas',
      ),
    ];
    expect(trayTooltip(jobs, now)).toBe(
      'Last consistent state: 12:08 (2 h ago)\nlaptop: Backup disk not connected\nnas: no consistent state yet\nnas: the backup disk is full',
    );
  });

  it('says how many updates wait in the local cache while the secondary is missing', () => {
    const now = new Date(2026, 10, 26, 14, 8);
    const t = new Date(2026, 10, 26, 14, 5).toISOString();
    const cache = { pending: 3, bytes: 1000, limitBytes: 2 ** 31, collapsed: 0 };
    expect(
      trayTooltip([job({ lastConsistent: state(t), status: 'secondary-missing', cache })], now),
    ).toBe('Last consistent state: 14:05 (3 min ago)\nlaptop: secondary missing, 3 updates cached');
  });

  it('picks the most urgent colour', () => {
    const now = new Date(2026, 10, 26, 14, 8);
    expect(trayStatus([job({})], now)).toBe('ok');
    expect(trayStatus([job({}), job({ status: 'secondary-missing' })], now)).toBe(
      'secondary-missing',
    );
    expect(
      trayStatus([job({ status: 'running' }), job({ status: 'secondary-missing' })], now),
    ).toBe('running');
    expect(trayStatus([job({ status: 'running' }), job({ status: 'error' })], now)).toBe('error');
  });

  it('speaks of the job furthest behind, not the newest, and colours a late job', () => {
    const now = new Date(2026, 10, 26, 14, 8);
    // DEFAULT_SCHEDULE snapshots hourly: 2 min and 5 h old.
    const fresh = job({ lastConsistent: state(new Date(2026, 10, 26, 14, 6).toISOString()) });
    const stale = job(
      { lastConsistent: state(new Date(2026, 10, 26, 9, 8).toISOString()) },
      'photos',
    );
    for (const jobs of [
      [fresh, stale],
      [stale, fresh],
    ]) {
      expect(trayTooltip(jobs, now)).toBe(
        'Last consistent state: 09:08 (5 h ago)\nphotos, the furthest behind of 2 jobs',
      );
      expect(trayStatus(jobs, now)).toBe('error');
    }
    expect(trayStatus([fresh], now)).toBe('ok');
    // Paused by the user: old on purpose, not an alarm.
    const paused = { ...stale, config: { ...stale.config, paused: true } };
    expect(trayStatus([fresh, paused], now)).toBe('ok');
    // A running job is busy, but the late one still needs attention.
    expect(trayStatus([{ ...fresh, status: 'running' }, stale], now)).toBe('error');
  });
});
