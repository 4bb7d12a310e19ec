// The scheduler on real jobs: a backup folder that goes away and comes back, the battery.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startApp, type App } from '../../src/main/index.js';
import { until } from '../helpers/app.js';
import { DEFAULT_SCHEDULE, type JobView } from '../../src/shared/jobs.js';
import { randomImage, scribble, WORKER_URL } from '../helpers/engine.js';
import { tempDir } from '../helpers/tmp.js';

const apps: App[] = [];
afterEach(async () => {
  for (const a of apps.splice(0)) await a.close();
});

describe('scheduler', () => {
  it('waits while the backup disk is away, and snapshots when it is plugged in again', async () => {
    const dir = tempDir();
    const image = path.join(dir, 'disk.img');
    randomImage(image, 4);
    const a = await startApp({
      dataDir: path.join(dir, 'data'),
      info: { version: 'test', shell: 'headless' },
      engine: { workerUrl: WORKER_URL },
      // Ticks are driven by hand below.
      scheduler: { tickMs: 3_600_000 },
    });
    apps.push(a);
    const backup = path.join(dir, 'usb', 'tidemark');
    const created = await a.dispatch('jobs.create', {
      mode: 'device',
      primary: image,
      secondary: backup,
      schedule: DEFAULT_SCHEDULE,
    });
    if (!created.ok) throw new Error(created.error.message);
    const id = (created.value as JobView).config.id;
    await until(a, id, (j) => j.status === 'ok');
    await a.scheduler.tick();
    expect(a.jobs.get(id).waiting).toBe(null);
    expect(a.jobs.get(id).nextRunAt).not.toBe(null);

    // "Unplugged": the disk's folder is gone.
    fs.renameSync(path.join(dir, 'usb'), path.join(dir, 'away'));
    await a.scheduler.tick();
    expect(a.jobs.get(id).status).toBe('secondary-missing');
    // The local cache takes the points meanwhile: the schedule does not wait for the disk.
    expect(a.jobs.get(id).waiting).toBe(null);
    expect(a.jobs.get(id).cache?.pending).toBe(0);

    scribble(image, 1 << 20, 4096);
    fs.renameSync(path.join(dir, 'away'), path.join(dir, 'usb'));
    await a.scheduler.tick();
    const after = await until(a, id, (j) => j.stateCount === 2 && j.activity === null);
    expect(after.status).toBe('ok');

    a.scheduler.setOnBattery(true);
    await a.scheduler.tick();
    expect(a.jobs.get(id).waiting).toBe('Paused on battery');
    a.scheduler.setOnBattery(false);
    await a.scheduler.tick();
    expect(a.jobs.get(id).waiting).toBe(null);
  });
});
