#!/usr/bin/env node
// The app's snapshot with the local cache on (`npm run build:node && node bench/app-cache.js`).
//
// One 128 MiB random image; each point changes 4 MiB of it. Times (median of 3): the engine's
// plain `snapshot` on the main thread, the app's `jobs.snapshot` (worker, cache on) to the
// secondary, the same while the secondary's folder is away (to the cache), and the point after
// it is back (ships the 3 cached updates, then records its own).
import { randomFillSync } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const out = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../out/node/main');
const { startApp } = await import(pathToFileURL(path.join(out, 'index.js')).href);
const { initArchive, snapshotArchive } = await import(
  pathToFileURL(path.join(out, 'engine/device-engine.js')).href
);

const MIB = 1 << 20;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tidemark-bench-app-cache-'));
const image = path.join(dir, 'disk.img');

function write(offset, bytes) {
  const fd = fs.openSync(image, offset === 0 && bytes === 128 * MIB ? 'w' : 'r+');
  const chunk = Buffer.alloc(MIB);
  for (let done = 0; done < bytes; done += MIB)
    fs.writeSync(fd, randomFillSync(chunk), 0, MIB, offset + done);
  fs.closeSync(fd);
}
const change = () => write(Math.floor(Math.random() * 124) * MIB, 4 * MIB);
const median = (xs) => Math.round([...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]);

async function timed(fn) {
  const t = performance.now();
  await fn();
  return performance.now() - t;
}

async function call(app, method, params) {
  const r = await app.dispatch(method, params);
  if (!r.ok) throw new Error(`${method}: ${r.error.message}`);
  return r.value;
}

try {
  write(0, 128 * MIB);
  const plain = path.join(dir, 'plain');
  await initArchive(image, plain);
  const plainMs = [];
  for (let i = 0; i < 3; i++) {
    change();
    plainMs.push(await timed(() => snapshotArchive(plain)));
  }

  const app = await startApp({
    dataDir: path.join(dir, 'data'),
    info: { version: 'bench', shell: 'headless' },
    engine: { workerUrl: pathToFileURL(path.join(out, 'engine-host/engine-worker.js')) },
    scheduler: { tickMs: 3_600_000 },
  });
  app.scheduler.stop();
  const secondary = path.join(dir, 'app');
  const job = await call(app, 'jobs.create', {
    mode: 'device',
    primary: image,
    secondary,
    schedule: { intervalMinutes: 60, quietHours: null, whenPlugged: false, pauseOnBattery: false },
  });
  const id = job.config.id;
  while (app.jobs.get(id).status !== 'ok' || !app.jobs.get(id).cache)
    await new Promise((r) => setTimeout(r, 50));
  const appMs = [];
  const cacheMs = [];
  for (let i = 0; i < 3; i++) {
    change();
    appMs.push(await timed(() => call(app, 'jobs.snapshot', { id })));
  }
  fs.renameSync(secondary, `${secondary}.away`);
  for (let i = 0; i < 3; i++) {
    change();
    cacheMs.push(await timed(() => call(app, 'jobs.snapshot', { id })));
  }
  fs.renameSync(`${secondary}.away`, secondary);
  change();
  let shipped = [];
  const backMs = await timed(async () => {
    shipped = (await call(app, 'jobs.snapshot', { id })).shipped;
  });
  await app.close();
  console.log(
    JSON.stringify({
      engineSnapshotMs: median(plainMs),
      appSnapshotMs: median(appMs),
      appSnapshotToCacheMs: median(cacheMs),
      appPointAfterReturnMs: Math.round(backMs),
      shipped,
    }),
  );
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
