// The local cache and retention as the app drives them: the services, the scheduler and the real
// worker on a real folder whose secondary vanishes (renamed away) for several scheduled points and
// comes back: states cached, shipped in order, every one restorable; a full cache collapses and
// says so; retention drops states with the policy's reasons and keeps a pinned one.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { startApp, type App } from '../../src/main/index.js';
import { call, until } from '../helpers/app.js';
import { DEFAULT_RETENTION } from '../../src/main/engine/retention/retention-policy.js';
import type { ApiEvent, RestorePlan, SnapshotOutcome } from '../../src/shared/api.js';
import { DEFAULT_SCHEDULE, type JobView } from '../../src/shared/jobs.js';
import { DEFAULT_RETENTION_POLICY } from '../../src/shared/retention.js';
import type { RestoreReport, StateInfo, VolumeRestoreReport } from '../../src/shared/states.js';
import { randomImage, scribble, WORKER_URL } from '../helpers/engine.js';
import { sha256, tempDir } from '../helpers/tmp.js';

const apps: App[] = [];
afterEach(async () => {
  for (const a of apps.splice(0)) await a.close();
});

/** The app with a clock the test moves; the scheduler runs only when the test ticks it. */
async function app(dataDir: string, clock: { t: number }): Promise<App> {
  const a = await startApp({
    dataDir,
    info: { version: 'test', shell: 'headless' },
    now: () => new Date(clock.t),
    engine: { workerUrl: WORKER_URL },
    scheduler: { tickMs: 3_600_000 },
  });
  apps.push(a);
  return a;
}

const SCHEDULE = { ...DEFAULT_SCHEDULE, intervalMinutes: 5, pauseOnBattery: false };

async function volumeJob(
  a: App,
  dir: string,
): Promise<{ id: string; tree: string; backup: string }> {
  const tree = path.join(dir, 'tree');
  fs.mkdirSync(tree);
  fs.writeFileSync(path.join(tree, 'a.txt'), 'version 0\n');
  const backup = path.join(dir, 'backup');
  const job = await call<JobView>(a, 'jobs.create', {
    mode: 'volume',
    primary: tree,
    secondary: backup,
    schedule: SCHEDULE,
  });
  await until(a, job.config.id, (j) => j.status === 'ok' && j.cache !== null);
  return { id: job.config.id, tree, backup };
}

/** One scheduled point: the clock passes the interval, the scheduler ticks, the job settles. */
async function scheduledPoint(a: App, id: string, clock: { t: number }, states: number) {
  clock.t += 6 * 60_000;
  await a.scheduler.tick();
  return until(a, id, (j) => j.activity === null && j.stateCount === states);
}

describe('the local cache in the app', () => {
  it('caches scheduled points while the secondary is away, ships them in order, all restore', async () => {
    const dir = tempDir();
    const clock = { t: Date.now() };
    const a = await app(path.join(dir, 'data'), clock);
    const { id, tree, backup } = await volumeJob(a, dir);
    const content = new Map<number, string>([[0, 'version 0\n']]);

    const away = `${backup}.away`;
    fs.renameSync(backup, away);
    for (let i = 1; i <= 3; i++) {
      fs.writeFileSync(path.join(tree, 'a.txt'), `version ${i}${'!'.repeat(i)}\n`);
      const job = await scheduledPoint(a, id, clock, 1 + i);
      expect(job.status).toBe('secondary-missing');
      expect(job.lastError).toBeNull();
      expect(job.cache?.pending).toBe(i);
      content.set(i, `version ${i}${'!'.repeat(i)}\n`);
    }
    expect(fs.existsSync(backup)).toBe(false);
    const offline = await call<StateInfo[]>(a, 'jobs.states', { id });
    expect(offline.map((s) => [s.id, s.location])).toEqual([
      [0, 'secondary'],
      [1, 'cache'],
      [2, 'cache'],
      [3, 'cache'],
    ]);
    expect(
      a.jobs
        .get(id)
        .log.map((l) => l.message)
        .join('\n'),
    ).toMatch(/secondary missing .*state 3 kept in the local cache, 3 updates cached/);

    // A cached state restores without the secondary.
    const early = path.join(dir, 'early');
    const r = await call<VolumeRestoreReport>(a, 'jobs.restore', {
      id,
      stateId: 2,
      what: { kind: 'everything' },
      target: early,
      overwrite: 'none',
    });
    expect(r.verified).toBe(true);
    expect(fs.readFileSync(path.join(early, 'a.txt'), 'utf8')).toBe(content.get(2));

    // Back: the scheduler notices the disk and the cached updates go in order.
    fs.renameSync(away, backup);
    fs.writeFileSync(path.join(tree, 'a.txt'), 'version 4, back\n');
    content.set(4, 'version 4, back\n');
    await a.scheduler.tick();
    const back = await until(a, id, (j) => j.activity === null && j.cache?.pending === 0);
    expect(back.status).toBe('ok');
    expect(back.log.map((l) => l.message).join('\n')).toMatch(
      /shipped 3 cached updates in order \(states 1, 2, 3\)/,
    );
    const states = await call<StateInfo[]>(a, 'jobs.states', { id });
    expect(states.map((s) => s.id)).toEqual([0, 1, 2, 3, 4]);
    expect(states.every((s) => s.location === 'secondary')).toBe(true);
    const times = states.map((s) => Date.parse(s.time));
    expect([...times].sort((x, y) => x - y)).toEqual(times);

    for (const s of states) {
      const target = path.join(dir, `restored-${s.id}`);
      const report = await call<VolumeRestoreReport>(a, 'jobs.restore', {
        id,
        stateId: s.id,
        what: { kind: 'everything' },
        target,
        overwrite: 'none',
      });
      expect(report.stateHash).toBe(s.stateHash);
      expect(fs.readFileSync(path.join(target, 'a.txt'), 'utf8')).toBe(content.get(s.id));
    }
  }, 60_000);

  it('a device job: a point while the disk is away is cached, planned and restored from the cache', async () => {
    const dir = tempDir();
    const clock = { t: Date.now() };
    const a = await app(path.join(dir, 'data'), clock);
    const image = path.join(dir, 'disk.img');
    randomImage(image, 4);
    const backup = path.join(dir, 'usb', 'tidemark');
    const created = await call<JobView>(a, 'jobs.create', {
      mode: 'device',
      primary: image,
      secondary: backup,
      schedule: SCHEDULE,
    });
    const id = created.config.id;
    await until(a, id, (j) => j.status === 'ok' && j.cache !== null);

    fs.renameSync(path.join(dir, 'usb'), path.join(dir, 'away'));
    scribble(image, 1 << 20, 100_000);
    const cachedHash = sha256(image);
    let progressTotal = 0;
    a.events.subscribe((e) => {
      if (e.type === 'job' && e.job.activity?.kind === 'snapshot')
        progressTotal = Math.max(progressTotal, e.job.activity.total);
    });
    const outcome = await call<SnapshotOutcome>(a, 'jobs.snapshot', { id });
    expect(outcome).toMatchObject({ location: 'cache', changed: true, cache: { pending: 1 } });
    // The bar moves (and a cancel can stop it at its next report) with the cache on too.
    expect(progressTotal).toBeGreaterThan(0);
    const target = path.join(dir, 'restored.img');
    const what = { kind: 'everything' };
    const plan = await call<RestorePlan>(a, 'jobs.planRestore', {
      id,
      stateId: 1,
      what,
      target,
      overwrite: 'none',
    });
    expect(plan.problems).toEqual([]);
    const r = await call<RestoreReport>(a, 'jobs.restore', {
      id,
      stateId: 1,
      what,
      target,
      overwrite: 'none',
    });
    expect(r.stateHash).toBe(outcome.changed ? outcome.state.stateHash : '');
    expect(sha256(target)).toBe(cachedHash);
    // Blocks the cache lacks come from the primary only while their hash is the state's: once
    // the primary changed there, the restore says so in one line and writes nothing wrong.
    scribble(image, 2 << 20, 100_000);
    const refused = await a.dispatch('jobs.restore', {
      id,
      stateId: 1,
      what,
      target: path.join(dir, 'again.img'),
      overwrite: 'none',
    });
    expect(refused.ok ? '' : refused.error.code).toBe('cache.needs-secondary');
    expect(fs.existsSync(path.join(dir, 'again.img'))).toBe(false);

    fs.renameSync(path.join(dir, 'away'), path.join(dir, 'usb'));
    const back = await call<SnapshotOutcome>(a, 'jobs.snapshot', { id });
    expect(back).toMatchObject({ location: 'secondary', shipped: [1], changed: true });
    const states = await call<StateInfo[]>(a, 'jobs.states', { id });
    expect(states.map((s) => [s.id, s.location])).toEqual([
      [0, 'secondary'],
      [1, 'secondary'],
      [2, 'secondary'],
    ]);
  }, 60_000);

  it('a full cache collapses cached states and raises a notice', async () => {
    const dir = tempDir();
    const clock = { t: Date.now() };
    const a = await app(path.join(dir, 'data'), clock);
    const notices: ApiEvent[] = [];
    a.events.subscribe((e) => e.type === 'notice' && notices.push(e));
    const { id, tree, backup } = await volumeJob(a, dir);
    // The default limit (settings) applies to a job without its own.
    await call(a, 'settings.update', { cacheLimitBytes: 2 ** 20 });
    expect((await a.dispatch('settings.update', { cacheLimitBytes: -1 })).ok).toBe(false);
    await call(a, 'jobs.update', { id, cacheLimitBytes: null });
    expect((await a.dispatch('jobs.update', { id, cacheLimitBytes: 1000 })).ok).toBe(false);

    fs.renameSync(backup, `${backup}.away`);
    // Each point changes 700 kB of random bytes: two cached updates are over 1 MiB.
    fs.writeFileSync(path.join(tree, 'big.bin'), randomBytes(700_000));
    await scheduledPoint(a, id, clock, 2);
    fs.writeFileSync(path.join(tree, 'big.bin'), randomBytes(700_000));
    clock.t += 6 * 60_000;
    await a.scheduler.tick();
    const job = await until(
      a,
      id,
      (j) => j.activity === null && j.log.some((l) => /full/.test(l.message)),
    );
    expect(job.cache?.pending).toBe(1);
    expect(job.cache?.collapsed).toBe(1);
    expect(job.cache?.limitBytes).toBe(2 ** 20);
    expect(job.stateCount).toBe(2);
    expect(notices).toHaveLength(1);
    expect(notices[0]).toMatchObject({
      type: 'notice',
      jobId: id,
      message: expect.stringMatching(/local cache full: states 1 collapsed into state 2/),
    });
  }, 60_000);
});

describe('retention in the app', () => {
  it('the form defaults are the engine policy; prune says why; a pinned state stays', async () => {
    expect(DEFAULT_RETENTION_POLICY).toEqual(DEFAULT_RETENTION);
    const dir = tempDir();
    const clock = { t: Date.now() };
    const a = await app(path.join(dir, 'data'), clock);
    const { id, tree } = await volumeJob(a, dir);
    for (let i = 1; i <= 2; i++) {
      fs.writeFileSync(path.join(tree, 'a.txt'), `version ${i}${'!'.repeat(i)}\n`);
      await call(a, 'jobs.snapshot', { id });
    }
    const pinned = await call<StateInfo[]>(a, 'jobs.pin', { id, stateId: 1, pinned: true });
    expect(pinned.find((s) => s.id === 1)?.pinned).toBe(true);
    expect((await a.dispatch('jobs.pin', { id, stateId: -1, pinned: true })).ok).toBe(false);

    await call(a, 'jobs.update', {
      id,
      retention: { keep: 'policy', keepWithinMs: 0, hourly: 0, daily: 0, weekly: 0 },
    });
    fs.writeFileSync(path.join(tree, 'a.txt'), 'last\n');
    // The policy is evaluated at the app's time: three days on, the earlier states are old.
    clock.t = Date.now() + 3 * 86_400_000;
    const outcome = await call<SnapshotOutcome>(a, 'jobs.snapshot', { id });
    expect(outcome.pruned?.dropped, JSON.stringify(outcome.pruned)).toBe(2);
    const states = await call<StateInfo[]>(a, 'jobs.states', { id });
    expect(states.map((s) => s.id)).toEqual([1, 3]);
    const log = a.jobs.get(id).log.map((l) => l.message);
    expect(log).toContain('state 1 pinned: retention keeps it');
    expect(log.join('\n')).toMatch(/retention removed 2 states/);
    expect(log.filter((m) => /^state [02] dropped: \S/.test(m))).toHaveLength(2);
  }, 60_000);
});
