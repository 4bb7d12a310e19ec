#!/usr/bin/env node
// Tidemark volume-mode benchmark (`npm run bench -- --volume`, or `node bench/volume.js`).
//
// A tree of real files (default 50,000 files, ~1 GiB, plus one 200 MB file) gets a baseline and
// N intervals of small changes: a few hundred files modified, appended, renamed, deleted and
// created, and 1 MiB rewritten inside the big file. Each interval is measured for:
//   - Tidemark with its live journal (`tidemark watch`: the point's own time, `pointMs`),
//   - Tidemark without a watcher (`tidemark snapshot`: metadata rescan),
//   - restic and borg incremental backups, and `rsync -a --link-dest` to a new folder,
// all in the same run, on the same change. Run at two tree sizes, the interval time should
// follow the changed bytes, not the tree's size. Tables go to stdout and
// bench/results/volume-latest.md. Choices come from the seeded generator; contents are random
// (incompressible) bytes.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Rng } from './lib/prng.js';
import { duBytes, run, timed } from './lib/proc.js';
import { mb, ratio, secs, table } from './lib/report.js';
import * as T from './lib/tools.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const MiB = 1024 ** 2;

const { values: opt } = parseArgs({
  options: {
    files: { type: 'string', default: '10000,50000' },
    'big-file': { type: 'string', default: '200' },
    intervals: { type: 'string', default: '5' },
    touched: { type: 'string', default: '300' },
    'no-borg': { type: 'boolean', default: false },
    'no-rescan': { type: 'boolean', default: false },
    'cpu-prof': { type: 'string' },
    workdir: { type: 'string' },
    seed: { type: 'string', default: '1' },
    volume: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
  strict: false,
});

if (opt.help) {
  process.stdout.write(`usage: node bench/volume.js [options]

  --files A,B       tree sizes in files (default 10000,50000; ~21 kB a file on average)
  --big-file MB     size of the big file in MB (default 200)
  --intervals N     intervals after the baseline (default 5)
  --touched N       files touched per interval (default 300)
  --no-borg         skip borg
  --no-rescan       skip the \`tidemark snapshot\` (rescan) column, to iterate faster
  --cpu-prof DIR    write a V8 CPU profile of the \`tidemark watch\` process into DIR
  --workdir DIR     where the temporary folder goes (default: .tmp/ in the repository)
`);
  process.exit(0);
}

/** Integer in [0, n). */
const below = (rng, n) => rng.int(0, n - 1);

const log = (msg) => process.stderr.write(`[volume] ${msg}\n`);

/** Writes `count` files of 1–40 kB (mean ~21 kB) in folders of 100, and the big file. */
function buildTree(root, count, bigBytes, rng) {
  const files = [];
  for (let i = 0; i < count; i++) {
    const dir = path.join(root, `d${Math.floor(i / 100)}`);
    if (i % 100 === 0) fs.mkdirSync(dir, { recursive: true });
    const rel = `d${Math.floor(i / 100)}/f${i}.dat`;
    fs.writeFileSync(path.join(root, rel), randomBytes(1024 + below(rng, 40 * 1024)));
    files.push(rel);
  }
  const fd = fs.openSync(path.join(root, 'big.bin'), 'w');
  for (let at = 0; at < bigBytes; at += 8 * MiB)
    fs.writeSync(fd, randomBytes(Math.min(8 * MiB, bigBytes - at)));
  fs.closeSync(fd);
  return files;
}

/** A few hundred files modified, appended, renamed, deleted, created; 1 MiB inside the big file. */
function mutate(root, files, touched, k, rng) {
  const pick = () => files[below(rng, files.length)];
  const per = Math.max(1, Math.floor(touched / 5));
  for (let i = 0; i < per; i++) {
    const f = path.join(root, pick());
    const size = fs.statSync(f).size;
    const fd = fs.openSync(f, 'r+');
    fs.writeSync(fd, randomBytes(512), 0, 512, below(rng, Math.max(1, size - 512)));
    fs.closeSync(fd);
  }
  for (let i = 0; i < per; i++) fs.appendFileSync(path.join(root, pick()), randomBytes(2048));
  for (let i = 0; i < per; i++) {
    const j = below(rng, files.length);
    const to = `${path.dirname(files[j])}/r${k}-${i}-${path.basename(files[j])}`;
    fs.renameSync(path.join(root, files[j]), path.join(root, to));
    files[j] = to;
  }
  for (let i = 0; i < per; i++) {
    const j = below(rng, files.length);
    fs.rmSync(path.join(root, files[j]));
    files.splice(j, 1);
  }
  fs.mkdirSync(path.join(root, `new${k}`));
  for (let i = 0; i < per; i++) {
    const rel = `new${k}/n${i}.dat`;
    fs.writeFileSync(path.join(root, rel), randomBytes(1024 + below(rng, 40 * 1024)));
    files.push(rel);
  }
  const fd = fs.openSync(path.join(root, 'big.bin'), 'r+');
  fs.writeSync(fd, randomBytes(MiB), 0, MiB, (20 + 7 * k) * MiB);
  fs.closeSync(fd);
}

const WATCH_EVERY_MS = 2000;

/** `tidemark watch --json` as a child; resolves each point's JSON line as it comes. */
function startWatch(archive) {
  const child = spawn(
    process.execPath,
    [
      ...(opt['cpu-prof'] ? ['--cpu-prof', '--cpu-prof-dir', path.resolve(opt['cpu-prof'])] : []),
      T.TIDEMARK_BIN,
      'watch',
      archive,
      '--every',
      `${WATCH_EVERY_MS}ms`,
      '--json',
    ],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const lines = [];
  let waiting = null;
  let buffered = '';
  child.stdout.on('data', (d) => {
    buffered += d;
    let nl;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      // Arrival time: minus pointMs, it says whether a point began after a change was written.
      lines.push({ ...JSON.parse(buffered.slice(0, nl)), arrivedMs: Date.now() });
      buffered = buffered.slice(nl + 1);
      waiting?.();
    }
  });
  child.stderr.on('data', (d) => process.stderr.write(`[watch] ${d}`));
  return {
    /** The first line that passes `test`, or null when none came within `timeoutMs`. */
    async next(test, timeoutMs = Infinity) {
      const until = Date.now() + timeoutMs;
      for (;;) {
        const i = lines.findIndex(test);
        if (i >= 0) return lines.splice(0, i + 1)[i];
        const left = until - Date.now();
        if (left <= 0) return null;
        await new Promise((r) => {
          waiting = r;
          if (left !== Infinity) setTimeout(r, left);
        });
      }
    },
    stop: () =>
      new Promise((r) => {
        child.once('exit', r);
        child.kill('SIGTERM');
      }),
  };
}

/**
 * The watch's timer is not tied to the bench's writes: a point may begin while the change is
 * being made and take only part of it, the rest landing in the next point. So an interval is
 * every point with a change until one that began after the change was written (it took what was
 * left), or until the watch stays idle for a few ticks; their times and bytes are added up.
 */
async function pointsOfChange(watch, writtenMs) {
  let pointMs = 0;
  let storedBytes = 0;
  let points = 0;
  for (;;) {
    const line = await watch.next(() => true, points > 0 ? 4 * WATCH_EVERY_MS : Infinity);
    if (line === null) break;
    if (!line.changed) continue;
    pointMs += line.pointMs;
    storedBytes += line.state.storedBytes;
    points++;
    if (line.arrivedMs - line.pointMs > writtenMs) break;
  }
  return { pointMs, points, state: { storedBytes } };
}

async function runSize(base, count, borg) {
  const rng = new Rng(Number(opt.seed) + count);
  const dir = path.join(base, `volume-${count}`);
  fs.rmSync(dir, { recursive: true, force: true });
  const tree = path.join(dir, 'tree');
  fs.mkdirSync(tree, { recursive: true });
  log(`${count} files: building the tree`);
  const files = buildTree(tree, count, Number(opt['big-file']) * 1e6, rng);
  const treeBytes = duBytes(tree);
  const tmWatch = path.join(dir, 'tm-watch');
  const tmScan = path.join(dir, 'tm-scan');
  const restic = path.join(dir, 'restic');
  const resticCache = path.join(dir, 'restic-cache');
  const borgRepo = path.join(dir, 'borg');
  const rsyncDir = path.join(dir, 'rsync');
  fs.mkdirSync(rsyncDir);

  log(`${count} files: baselines`);
  const base0 = {};
  base0.tidemark = (
    await timed(process.execPath, [T.TIDEMARK_BIN, 'init', tree, tmWatch, '--no-btrfs-snapshot'], {
      scratch: dir,
    })
  ).wall;
  await timed(process.execPath, [T.TIDEMARK_BIN, 'init', tree, tmScan, '--no-btrfs-snapshot'], {
    scratch: dir,
  });
  await T.resticInit(restic, resticCache);
  base0.restic = (await T.resticBackup(restic, resticCache, tree, dir)).wall;
  if (borg) {
    await T.borgInit(borgRepo, dir);
    base0.borg = (await T.borgCreate(borgRepo, dir, tree, 'b0', dir)).wall;
  }
  base0.rsync = (
    await timed('rsync', ['-a', `${tree}/`, path.join(rsyncDir, '0')], { scratch: dir })
  ).wall;

  const watch = startWatch(tmWatch);
  await watch.next(() => true); // the start-up rescan
  const rows = [];
  for (let k = 1; k <= Number(opt.intervals); k++) {
    // Every program starts without the page cache's dirty data of the one before (rsync leaves
    // ~200 MB): whoever fsyncs first would otherwise pay for writing it out.
    await run('sync', []);
    mutate(tree, files, Number(opt.touched), k, rng);
    const point = await pointsOfChange(watch, Date.now());
    if (!opt['no-rescan']) await run('sync', []);
    const scan = opt['no-rescan']
      ? { wall: 0, stdout: '{"state":{"storedBytes":0}}' }
      : await timed(
          process.execPath,
          [T.TIDEMARK_BIN, 'snapshot', tmScan, '--json', '--no-btrfs-snapshot'],
          { scratch: dir },
        );
    const scanState = JSON.parse(scan.stdout).state;
    await run('sync', []);
    const r = await T.resticBackup(restic, resticCache, tree, dir);
    await run('sync', []);
    const b = borg ? await T.borgCreate(borgRepo, dir, tree, `b${k}`, dir) : null;
    await run('sync', []);
    const before = duBytes(rsyncDir);
    const rs = await timed(
      'rsync',
      [
        '-a',
        `--link-dest=${path.join(rsyncDir, String(k - 1))}`,
        `${tree}/`,
        path.join(rsyncDir, String(k)),
      ],
      { scratch: dir },
    );
    rows.push({
      k,
      watchS: point.pointMs / 1000,
      watchBytes: point.state.storedBytes,
      scanS: scan.wall,
      scanBytes: scanState.storedBytes,
      resticS: r.wall,
      resticBytes: r.added,
      borgS: b?.wall ?? null,
      borgBytes: b?.added ?? null,
      rsyncS: rs.wall,
      rsyncBytes: duBytes(rsyncDir) - before,
    });
    log(
      `${count} files: interval ${k}: watch ${secs(point.pointMs / 1000)} s (${point.points} point(s)), restic ${secs(r.wall)} s`,
    );
  }
  await watch.stop();
  fs.rmSync(dir, { recursive: true, force: true });
  return { count, treeBytes, base0, rows };
}

const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;

export async function runVolumeBench() {
  const base = path.resolve(opt.workdir ?? path.join(HERE, '..', '.tmp'));
  fs.mkdirSync(base, { recursive: true });
  const borg = !opt['no-borg'] && T.missingTools(T.OPTIONAL).length === 0;
  const results = [];
  for (const count of String(opt.files).split(',').map(Number))
    results.push(await runSize(base, count, borg));
  const lines = ['## Volume mode', ''];
  for (const r of results) {
    lines.push(
      `### ${r.count} files, ${mb(r.treeBytes)} (baseline: Tidemark ${secs(r.base0.tidemark)} s, restic ${secs(r.base0.restic)} s${r.base0.borg ? `, borg ${secs(r.base0.borg)} s` : ''}, rsync ${secs(r.base0.rsync)} s)`,
      '',
    );
    lines.push(
      table(
        [
          'interval',
          'Tidemark watch',
          'added',
          'Tidemark rescan',
          'added',
          'restic',
          'added',
          'borg',
          'added',
          'rsync --link-dest',
          'added',
        ],
        r.rows.map((x) => [
          x.k,
          `${secs(x.watchS)} s`,
          mb(x.watchBytes),
          `${secs(x.scanS)} s`,
          mb(x.scanBytes),
          `${secs(x.resticS)} s`,
          mb(x.resticBytes),
          x.borgS === null ? '' : `${secs(x.borgS)} s`,
          mb(x.borgBytes),
          `${secs(x.rsyncS)} s`,
          mb(x.rsyncBytes),
        ]),
      ),
      '',
    );
    const w = mean(r.rows.map((x) => x.watchS));
    const rs = mean(r.rows.map((x) => x.resticS));
    lines.push(
      `Mean interval: Tidemark watch ${secs(w)} s, restic ${secs(rs)} s: ${ratio(rs / w)} faster (target ≥ 10×); bytes added ${mb(mean(r.rows.map((x) => x.watchBytes)))} vs restic ${mb(mean(r.rows.map((x) => x.resticBytes)))} (target ≤ 1×).`,
      '',
    );
  }
  const md = lines.join('\n');
  process.stdout.write(md + '\n');
  const out = path.join(HERE, 'results');
  fs.mkdirSync(out, { recursive: true });
  fs.writeFileSync(path.join(out, 'volume-latest.md'), md + '\n');
  return results;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  runVolumeBench().catch((err) => {
    process.stderr.write(`bench: ${err.message}\n`);
    process.exit(1);
  });
}
