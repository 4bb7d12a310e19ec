// The services as the UI drives them: real worker, real archives, real files, JSON config.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startApp, type App } from '../../src/main/index.js';
import { call, until } from '../helpers/app.js';
import type { JobView } from '../../src/shared/jobs.js';
import { DEFAULT_SCHEDULE } from '../../src/shared/jobs.js';
import type { PruneReport } from '../../src/shared/retention.js';
import { decide } from '../../src/main/services/schedule-policy.js';
import { checkChoice } from '../../src/main/services/drives.js';
import { randomImage, scribble, WORKER_URL } from '../helpers/engine.js';
import { sha256, tempDir } from '../helpers/tmp.js';
import { rootSkipReason, sh } from '../helpers/root.js';

const apps: App[] = [];
afterEach(async () => {
  for (const a of apps.splice(0)) await a.close();
});

async function app(dataDir: string, allowCrash = false): Promise<App> {
  const a = await startApp({
    dataDir,
    info: { version: 'test', shell: 'headless' },
    engine: { workerUrl: WORKER_URL, allowCrash },
    // The scheduler is driven by hand in these tests.
    scheduler: { tickMs: 3_600_000 },
  });
  a.scheduler.stop();
  apps.push(a);
  return a;
}

describe('services', () => {
  it('creates a job, runs its baseline, snapshots, restores, and survives a restart', async () => {
    const dir = tempDir();
    const image = path.join(dir, 'disk.img');
    randomImage(image, 4);
    const data = path.join(dir, 'data');
    const a = await app(data);
    const created = await call<JobView>(a, 'jobs.create', {
      mode: 'device',
      primary: image,
      secondary: path.join(dir, 'backup'),
      schedule: DEFAULT_SCHEDULE,
    });
    const ready = await until(a, created.config.id, (j) => j.status === 'ok');
    expect(ready.stateCount).toBe(1);
    scribble(image, 1 << 20, 4096);
    const snap = await call<{ changed: boolean }>(a, 'jobs.snapshot', { id: created.config.id });
    expect(snap.changed).toBe(true);
    const target = path.join(dir, 'restored.img');
    const report = await call<{ verified: boolean }>(a, 'jobs.restore', {
      id: created.config.id,
      stateId: 1,
      what: { kind: 'everything' },
      target,
      overwrite: 'none',
    });
    expect(report.verified).toBe(true);
    expect(sha256(target)).toBe(sha256(image));
    // A folder as the target: a new image file inside it, named after the primary and state.
    const folder = path.join(dir, 'restores');
    fs.mkdirSync(folder);
    const inFolder = await call<{ target: string }>(a, 'jobs.restore', {
      id: created.config.id,
      stateId: 1,
      what: { kind: 'everything' },
      target: folder,
      overwrite: 'none',
    });
    expect(inFolder.target).toBe(path.join(folder, 'disk-state-1.img'));
    expect(sha256(inFolder.target)).toBe(sha256(image));
    await a.close();
    apps.length = 0;

    const again = await app(data);
    const jobs = await call<JobView[]>(again, 'jobs.list', {});
    expect(jobs.map((j) => [j.config.id, j.stateCount, j.status])).toEqual([
      [created.config.id, 2, 'ok'],
    ]);
  });

  it('applies the retention policy of a job after each snapshot', async () => {
    const dir = tempDir();
    const image = path.join(dir, 'disk.img');
    randomImage(image, 4);
    const a = await app(path.join(dir, 'data'));
    const created = await call<JobView>(a, 'jobs.create', {
      mode: 'device',
      primary: image,
      secondary: path.join(dir, 'backup'),
      schedule: DEFAULT_SCHEDULE,
    });
    const id = created.config.id;
    await until(a, id, (j) => j.status === 'ok');
    scribble(image, 1 << 20, 5000);
    await call(a, 'jobs.snapshot', { id });
    expect((await call<Array<{ id: number }>>(a, 'jobs.states', { id })).map((s) => s.id)).toEqual([
      0, 1,
    ]);
    // Nothing kept by age: only the newest state survives the next snapshot's prune.
    const retention = { keep: 'policy', keepWithinMs: 0, hourly: 0, daily: 0, weekly: 0 };
    // Previewed first: what would go and why, and nothing goes.
    const preview = await call<PruneReport>(a, 'jobs.previewRetention', { id, retention });
    expect(preview.dryRun).toBe(true);
    expect(preview.states.map((s) => [s.id, s.keep, s.reason])).toEqual([
      [0, false, 'beyond weekly'],
      [1, true, 'newest'],
    ]);
    const none = await a.dispatch('jobs.previewRetention', { id, retention: { keep: 'all' } });
    expect(none.ok ? '' : none.error.message).toBe(
      'keeping every state removes nothing: there is no preview',
    );
    expect((await call<Array<{ id: number }>>(a, 'jobs.states', { id })).map((s) => s.id)).toEqual([
      0, 1,
    ]);
    const updated = await call<JobView>(a, 'jobs.update', { id, retention });
    expect(updated.config.retention).toEqual(retention);
    scribble(image, 2 << 20, 5000);
    await call(a, 'jobs.snapshot', { id });
    expect((await call<Array<{ id: number }>>(a, 'jobs.states', { id })).map((s) => s.id)).toEqual([
      2,
    ]);
    const bad = await a.dispatch('jobs.update', { id, retention: { keep: 'some' } });
    expect(bad.ok).toBe(false);
  });

  it('refuses bad requests with one clear line and changes nothing', async () => {
    const dir = tempDir();
    const image = path.join(dir, 'disk.img');
    randomImage(image, 1);
    const data = path.join(dir, 'data');
    const a = await app(data);
    const bad = async (method: string, params: unknown) => {
      const r = await a.dispatch(method, params);
      expect(r.ok).toBe(false);
      return r.ok ? '' : r.error.message;
    };
    expect(await bad('jobs.nuke', {})).toBe('unknown method jobs.nuke');
    expect(
      await bad('jobs.create', {
        mode: 'device',
        primary: image,
        secondary: path.join(dir, 'b'),
        schedule: { ...DEFAULT_SCHEDULE, intervalMinutes: 1 },
      }),
    ).toBe('the interval must be at least 5 minutes (jobs.create schedule.intervalMinutes)');
    expect(
      await bad('jobs.create', {
        mode: 'device',
        primary: image,
        secondary: image,
        schedule: DEFAULT_SCHEDULE,
      }),
    ).toBe('the backup cannot be the primary itself');
    expect(await bad('jobs.snapshot', { id: 'nope' })).toBe('no job nope');
    expect(fs.existsSync(path.join(data, 'jobs.json'))).toBe(false);
  });

  it('a crashing engine: the job reports the error, and the next snapshot works', async () => {
    const dir = tempDir();
    const image = path.join(dir, 'disk.img');
    randomImage(image, 96);
    const a = await app(path.join(dir, 'data'), true);
    const failures: string[] = [];
    a.events.subscribe((e) => e.type === 'failure' && failures.push(e.error.code));
    const job = await call<JobView>(a, 'jobs.create', {
      mode: 'device',
      primary: image,
      secondary: path.join(dir, 'backup'),
      schedule: DEFAULT_SCHEDULE,
    });
    const id = job.config.id;
    await until(a, id, (j) => j.status === 'ok');
    scribble(image, 80 << 20, 8192);
    const engine = (a.jobs as unknown as { engine: { crashForTest(): void } }).engine;
    // The call is posted to the worker before dispatch returns; the crash lands while the
    // snapshot is still opening the archive or scanning.
    const running = a.dispatch('jobs.snapshot', { id });
    engine.crashForTest();
    const r = await running;
    expect(r.ok).toBe(false);
    expect(r.ok ? '' : r.error.code).toBe('engine.crashed');
    expect(a.jobs.get(id).status).toBe('error');
    expect(a.jobs.get(id).lastError?.code).toBe('engine.crashed');
    expect(failures).toEqual(['engine.crashed']);
    const ok = await call<{ changed: boolean }>(a, 'jobs.snapshot', { id });
    expect(ok.changed).toBe(true);
    expect(a.jobs.get(id).status).toBe('ok');
  });

  it('checks a primary/secondary pair', async () => {
    const dir = tempDir();
    const image = path.join(dir, 'disk.img');
    randomImage(image, 1);
    fs.mkdirSync(path.join(dir, 'full'));
    fs.writeFileSync(path.join(dir, 'full', 'x'), 'x');
    expect((await checkChoice('device', image, path.join(dir, 'new'))).errors).toEqual([]);
    expect((await checkChoice('device', dir, path.join(dir, 'n'))).errors[0]).toMatch(
      /is a folder/,
    );
    expect((await checkChoice('device', image, path.join(dir, 'full'))).errors[0]).toMatch(
      /is not empty/,
    );
    expect((await checkChoice('device', image, dir)).errors[0]).toMatch(/primary lies inside/);
    expect((await checkChoice('device', path.join(dir, 'x'), dir)).errors[0]).toMatch(
      /does not exist/,
    );
  });
});

describe('a backup disk too small for the primary', () => {
  it.skipIf(rootSkipReason())('is said before the job is made (a 1 MiB tmpfs)', async () => {
    const dir = tempDir();
    const image = path.join(dir, 'disk.img');
    randomImage(image, 2);
    const small = path.join(dir, 'small');
    fs.mkdirSync(small);
    sh('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', small]);
    try {
      const check = await checkChoice('device', image, path.join(small, 'tidemark'));
      expect(check.errors).toEqual([]);
      expect(check.warnings).toEqual([
        'the backup disk has 1.05 MB free; the baseline may need up to 2.10 MB',
      ]);
      // The restore wizard's check step says the same of a restore target, before writing.
      const a = await app(path.join(dir, 'data'));
      const job = await call<JobView>(a, 'jobs.create', {
        mode: 'device',
        primary: image,
        secondary: path.join(dir, 'backup'),
        schedule: DEFAULT_SCHEDULE,
      });
      await until(a, job.config.id, (j) => j.status === 'ok');
      const plan = await call<{ problems: string[]; bytes: number }>(a, 'jobs.planRestore', {
        id: job.config.id,
        stateId: 0,
        target: path.join(small, 'disk.img'),
        overwrite: 'none',
      });
      expect(plan.bytes).toBe(2 << 20);
      expect(plan.problems).toEqual([
        'not enough space: the state needs 2.10 MB, 1.05 MB are free',
      ]);
      await a.close();
      apps.length = 0;
    } finally {
      sh('umount', [small]);
    }
  });
});

describe('schedule policy', () => {
  const base = {
    schedule: DEFAULT_SCHEDULE,
    jobPaused: false,
    pausedUntil: null,
    onBattery: false,
    secondaryPresent: true,
  };
  const at = (h: number, m = 0) => new Date(2026, 10, 26, h, m);

  it('runs when the interval has passed, not before', () => {
    expect(decide({ ...base, lastRun: at(10), now: at(10, 59) }).runNow).toBe(false);
    expect(decide({ ...base, lastRun: at(10), now: at(11) }).runNow).toBe(true);
  });

  it('waits for the secondary, the battery, the pause and the quiet hours', () => {
    const due = { ...base, lastRun: at(9), now: at(11) };
    expect(decide({ ...due, secondaryPresent: false }).waiting).toBe('Backup disk not connected');
    expect(decide({ ...due, onBattery: true }).waiting).toBe('Paused on battery');
    expect(
      decide({ ...due, onBattery: true, schedule: { ...base.schedule, pauseOnBattery: false } })
        .runNow,
    ).toBe(true);
    expect(decide({ ...due, jobPaused: true }).dueAt).toBe(null);
    expect(decide({ ...due, pausedUntil: at(12) }).waiting).toBe('Paused until 12:00');
    const quiet = { ...base.schedule, quietHours: { start: 22, end: 6 } };
    const night = decide({ ...base, schedule: quiet, lastRun: at(21, 30), now: at(23) });
    expect(night.runNow).toBe(false);
    expect(night.dueAt?.getHours()).toBe(6);
    expect(night.waiting).toBe('Waiting for the quiet hours to end');
  });
});

describe('a cancelled baseline', () => {
  it('leaves no archive behind and runs again on the next snapshot', async () => {
    const dir = tempDir();
    const image = path.join(dir, 'disk.img');
    randomImage(image, 96);
    const a = await app(path.join(dir, 'data'));
    const failures: string[] = [];
    a.events.subscribe((e) => e.type === 'failure' && failures.push(e.error.code));
    let id = '';
    const stop = a.events.subscribe((e) => {
      const activity = e.type === 'job' ? e.job.activity : null;
      if (activity && activity.done > 0 && activity.done < activity.total) a.jobs.cancel(id);
    });
    const backup = path.join(dir, 'backup');
    id = (
      await call<JobView>(a, 'jobs.create', {
        mode: 'device',
        primary: image,
        secondary: backup,
        schedule: DEFAULT_SCHEDULE,
      })
    ).config.id;
    const cancelled = await until(a, id, (j) => j.activity === null);
    stop();
    expect(cancelled.status).toBe('new');
    expect(cancelled.lastError).toBe(null);
    expect(failures).toEqual([]);
    expect(fs.existsSync(backup) ? fs.readdirSync(backup) : []).toEqual([]);
    const again = await call<{ changed: boolean }>(a, 'jobs.snapshot', { id });
    expect(again.changed).toBe(true);
    expect(a.jobs.get(id).stateCount).toBe(1);
  });
});
