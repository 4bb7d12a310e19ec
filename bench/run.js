#!/usr/bin/env node
// Tidemark device-mode benchmark (`npm run bench`, as root).
//
// A 2 GiB ext4 image filled with real system files gets a baseline and N intervals of 1-2 %
// change (loop-mounted, files written, rewritten, renamed, deleted; one small file rewritten 50
// times). Tidemark's CLI is timed as users run it, next to references measured in the same run:
// dd read/write of the image, rsync --inplace --no-whole-file onto a copy, restic (and borg)
// incremental backups of the mounted filesystem. Then a restore of a middle state, verify --deep,
// and a 64 GiB sparse image for peak RSS. Tables go to stdout and bench/results/latest.md
// (raw numbers in latest.json). `node bench/run.js --help` lists the options.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { cleanupAll, installSignalHandlers, onCleanup, removeTreeSync } from './lib/cleanup.js';
import {
  buildSource,
  differingBytes,
  ext4Layout,
  makeExt4,
  mountImage,
  mutate,
  scatter,
} from './lib/image.js';
import { canDropCaches, dropCaches, duAllocated, duBytes, run, warm } from './lib/proc.js';
import { mb, met, rate, ratio, secs, table } from './lib/report.js';
import * as T from './lib/tools.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

// S3 upload has its own section (bench/s3.js).
if (process.argv.includes('--s3')) {
  process.argv.splice(process.argv.indexOf('--s3'), 1);
  await import('./s3.js');
  process.exit(0);
}

// Volume mode has its own section and options (bench/volume.js).
if (process.argv.includes('--volume')) {
  const { runVolumeBench } = await import('./volume.js');
  await runVolumeBench();
  process.exit(0);
}

const { values: opt } = parseArgs({
  options: {
    'block-sizes': { type: 'boolean', default: false },
    'no-borg': { type: 'boolean', default: false },
    'no-sparse': { type: 'boolean', default: false },
    intervals: { type: 'string', default: '5' },
    'image-size': { type: 'string', default: '2' },
    'sparse-size': { type: 'string', default: '64' },
    seed: { type: 'string', default: '1' },
    workdir: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

if (opt.help) {
  process.stdout.write(`usage: node bench/run.js [options]   (as root; npm run bench builds first)

  --block-sizes     also run baseline + intervals at 16 KiB, 64 KiB, 256 KiB and 1 MiB blocks
  --no-borg         skip the borg reference
  --no-sparse       skip the 64 GiB sparse image (peak RSS)
  --intervals N     intervals after the baseline (default 5)
  --image-size G    size of the ext4 image in GiB (default 2)
  --sparse-size G   size of the sparse image in GiB (default 64)
  --seed N          seed of the changes (default 1)
  --workdir DIR     where the temporary folder goes (default: .tmp/ in the repository)
  --volume          run the volume-mode section instead (node bench/volume.js --help)
  --s3              run the S3 upload section instead (node bench/s3.js --help)
`);
  process.exit(0);
}

const INTERVALS = Number(opt.intervals);
const IMAGE_BYTES = Number(opt['image-size']) * GiB;
const SPARSE_BYTES = Number(opt['sparse-size']) * GiB;
const SEED = Number(opt.seed);
const SOURCE_BUDGET = Math.round(IMAGE_BYTES * 0.6); // ~1.2 GiB of files in a 2 GiB image
const CHANGE_BUDGET = Math.round(IMAGE_BYTES * 0.012); // written in files per interval: 1.2 % of the image (~2 % of the image changes)
const STUDY_SIZES = [16 << 10, 64 << 10, 256 << 10, 1 << 20];

const started = Date.now();
const log = (msg) =>
  process.stderr.write(`[${((Date.now() - started) / 1000).toFixed(0).padStart(4)}s] ${msg}\n`);

function preflight() {
  const problems = [];
  if (process.platform !== 'linux')
    problems.push('the bench needs Linux (loop devices, /proc, ext4)');
  if (process.getuid?.() !== 0) {
    problems.push(
      'the bench must run as root: it loop-mounts an ext4 image to change it between intervals and drops the page cache (sudo npm run bench)',
    );
  }
  const missing = T.missingTools(T.REQUIRED);
  if (missing.length > 0) {
    const pkgs = [...new Set(missing.map((t) => t.pkg))];
    problems.push(
      `missing tools: ${missing.map((t) => t.cmd).join(', ')}; install them with: apt-get install -y ${pkgs.join(' ')}`,
    );
  }
  if (!fs.existsSync(T.TIDEMARK_ENTRY))
    problems.push('tidemark is not built: run `npm run build:node` (npm run bench does it)');
  if (problems.length > 0) {
    for (const p of problems) process.stderr.write(`bench: ${p}\n`);
    process.exit(1);
  }
  const borg = !opt['no-borg'] && T.missingTools(T.OPTIONAL).length === 0;
  if (!opt['no-borg'] && !borg)
    log('borg not found: the borg reference is skipped (apt-get install -y borgbackup)');
  return { borg };
}

function checkSpace(dir, needed) {
  const s = fs.statfsSync(dir);
  const free = s.bavail * s.bsize;
  if (free < needed) {
    process.stderr.write(
      `bench: ${dir} has ${mb(free)} free; the bench needs about ${mb(needed)}\n`,
    );
    process.exit(1);
  }
  return free;
}

async function main() {
  const { borg } = preflight();
  installSignalHandlers();
  const base = path.resolve(opt.workdir ?? path.join(HERE, '..', '.tmp'));
  fs.mkdirSync(base, { recursive: true });
  const studySizes = opt['block-sizes'] ? STUDY_SIZES : [];
  const needed = IMAGE_BYTES * (opt['block-sizes'] ? 9 : 6) + 3 * GiB;
  const free = checkSpace(base, needed);
  const work = fs.mkdtempSync(path.join(base, 'bench-'));
  onCleanup(`folder ${work}`, () => removeTreeSync(work));
  log(`work folder ${work} (${mb(free)} free before)`);
  const cold = canDropCaches();
  if (!cold)
    log(
      'cannot drop the page cache (/proc/sys/vm/drop_caches): only warm-cache numbers are measured',
    );
  // Cold means cold data: the image, archives and repositories come from the disk. The programs
  // themselves (node and tidemark's modules, dd, rsync, restic, borg) are loaded again after each
  // drop, as they are for a resident app or a tool run minutes earlier; otherwise each run's
  // wall time would include reading its own binaries (0.5–1.3 s for node + native modules here).
  let warmArchive = null;
  const drop = async () => {
    if (!cold) return;
    dropCaches();
    await T.warmPrograms(borg, warmArchive);
  };

  const p = (name) => path.join(work, name);
  const img = p('primary.img');
  warmArchive = await T.makeWarmArchive(p('warm-programs'));
  const R = {
    meta: {},
    baseline: {},
    intervals: [],
    restore: {},
    verify: null,
    sparse: null,
    study: {},
  };
  R.meta = {
    date: new Date().toISOString(),
    host: os.hostname(),
    cpus: `${os.cpus().length} × ${os.cpus()[0]?.model ?? '?'}`,
    memory: mb(os.totalmem()),
    loadAtStart: os.loadavg()[0],
    node: process.version,
    coldCache: cold,
    imageBytes: IMAGE_BYTES,
    seed: SEED,
    intervals: INTERVALS,
  };
  R.meta.restic = (await run('restic', ['version'])).stdout.trim();
  R.meta.git = await gitState();
  R.meta.rsync = (await run('rsync', ['--version'])).stdout.split('\n')[0];
  if (borg) R.meta.borg = (await run('borg', ['--version'])).stdout.trim();

  // ------------------------------------------------------------------ the primary
  log(`copying up to ${mb(SOURCE_BUDGET)} of system files`);
  const src = p('source');
  const source = await buildSource(src, SOURCE_BUDGET);
  log(
    `${source.files} files, ${mb(source.bytes)}; mke2fs -t ext4 -d into a ${mb(IMAGE_BYTES)} image`,
  );
  await makeExt4(img, src, `${IMAGE_BYTES / MiB}M`);
  removeTreeSync(src);
  R.meta.source = source;
  R.meta.imageAllocated = duAllocated(img);
  const layout = await ext4Layout(img);

  const mnt = p('mnt'); // read-write mount for the changes
  const ro = p('ro'); // read-only mount, one fixed path, for restic and borg
  const archiveCold = p('tm-cold');
  const archiveWarm = p('tm-warm');
  // The same intervals through a running engine (as the app runs them), cold and warm.
  const archiveApp = p('tm-app');
  const archiveAppWarm = p('tm-app-warm');
  const rsyncCopy = p('rsync-copy.img');
  const resticRepo = p('restic-repo');
  const resticCache = p('restic-cache');
  const borgRepo = p('borg-repo');
  const borgBase = p('borg-base');

  // ------------------------------------------------------------------ baseline
  log('baseline: dd read (cold, then warm)');
  await drop();
  R.baseline.ddCold = (await T.ddRead(img, work)).wall;
  R.baseline.ddWarm = (await T.ddRead(img, work)).wall;

  log('baseline: tidemark init (cold)');
  await drop();
  let du0 = 0;
  const init = await T.tmInit(img, archiveCold, work);
  R.baseline.tm = {
    wall: init.wall,
    maxRss: init.maxRss,
    stored: init.state.storedBytes,
    du: duBytes(archiveCold) - du0,
  };
  R.meta.blockSize = T.archiveBlockSize(archiveCold);
  // The warm-cache archive starts from the same baseline.
  await run('cp', ['-a', archiveCold, archiveWarm]);
  await run('cp', ['-a', archiveCold, archiveApp]);
  await run('cp', ['-a', archiveCold, archiveAppWarm]);
  const engine = await T.engineSession();
  await engine.open(archiveApp);

  const study = {};
  for (const bs of studySizes) {
    if (bs === R.meta.blockSize) {
      study[bs] = { cold: archiveCold, warm: archiveWarm, baseline: R.baseline.tm, intervals: [] };
      continue;
    }
    log(`block-size study: init --block-size ${bs} (cold)`);
    const dir = p(`tm-bs${bs}`);
    await drop();
    const r = await T.tmInit(img, dir, work, bs);
    await run('cp', ['-a', dir, `${dir}-warm`]);
    study[bs] = {
      cold: dir,
      warm: `${dir}-warm`,
      baseline: { wall: r.wall, maxRss: r.maxRss, stored: r.state.storedBytes },
      intervals: [],
    };
  }

  log('baseline: rsync onto an empty copy (cold)');
  await drop();
  R.baseline.rsync = await T.rsyncInplace(img, rsyncCopy, work);

  log('baseline: restic backup (cold)');
  R.meta.resticRepoVersion = await T.resticInit(resticRepo, resticCache);
  await drop();
  {
    const m = await mountImage(img, ro, { readOnly: true });
    R.baseline.restic = await T.resticBackup(resticRepo, resticCache, ro, work);
    await m.release();
  }
  if (borg) {
    log('baseline: borg create (cold)');
    await T.borgInit(borgRepo, borgBase);
    await drop();
    const m = await mountImage(img, ro, { readOnly: true });
    R.baseline.borg = await T.borgCreate(borgRepo, borgBase, ro, 's0', work);
    await m.release();
  }

  // ------------------------------------------------------------------ intervals
  for (let k = 1; k <= INTERVALS; k++) {
    const I = { k };
    log(`interval ${k}: changing the filesystem`);
    {
      const m = await mountImage(img, mnt);
      I.changes = await mutate(mnt, k, SEED, CHANGE_BUDGET);
      await m.release();
    }
    // The rsync copy still holds the previous state: count what changed in the image.
    I.imageChanged = await differingBytes(img, rsyncCopy, layout);
    log(
      `interval ${k}: ${mb(I.changes.written)} written in files, ${mb(I.imageChanged.total)} of the image changed (4 KiB pages; journal ${mb(I.imageChanged.journal)}, inode tables ${mb(I.imageChanged.inodeTables)})`,
    );

    await drop();
    I.ddCold = (await T.ddRead(img, work)).wall;
    await drop();
    let before = duBytes(archiveCold);
    const snap = await T.tmSnapshot(archiveCold, work);
    if (!snap.changed) throw new Error(`tidemark recorded no state for interval ${k}`);
    I.tm = {
      wall: snap.wall,
      maxRss: snap.maxRss,
      stored: snap.state.storedBytes,
      changedBlocks: snap.state.changedBlocks,
      du: duBytes(archiveCold) - before,
    };
    await drop();
    const app = await engine.snapshot(archiveApp);
    if (!app.changed) throw new Error(`the running engine recorded no state for interval ${k}`);
    // The image is now in the page cache (tidemark just read it): the warm pair.
    I.ddWarm = (await T.ddRead(img, work)).wall;
    before = duBytes(archiveWarm);
    const snapW = await T.tmSnapshot(archiveWarm, work);
    I.tmWarm = { wall: snapW.wall, maxRss: snapW.maxRss, stored: snapW.state?.storedBytes ?? 0 };
    I.app = { cold: app.wall, warm: (await engine.snapshot(archiveAppWarm)).wall };
    log(
      `interval ${k}: tidemark ${secs(I.tm.wall)} s cold (dd ${secs(I.ddCold)} s), ${secs(I.tmWarm.wall)} s warm (dd ${secs(I.ddWarm)} s), ${mb(I.tm.stored)} stored; engine loaded: ${secs(I.app.cold)} s cold, ${secs(I.app.warm)} s warm`,
    );

    for (const bs of studySizes) {
      const s = study[bs];
      if (s.cold === archiveCold) {
        s.intervals.push({
          cold: I.tm.wall,
          warm: I.tmWarm.wall,
          stored: I.tm.stored,
          changedBlocks: I.tm.changedBlocks,
          ddCold: I.ddCold,
          ddWarm: I.ddWarm,
        });
        continue;
      }
      await drop();
      const c = await T.tmSnapshot(s.cold, work);
      const w = await T.tmSnapshot(s.warm, work);
      s.intervals.push({
        cold: c.wall,
        warm: w.wall,
        stored: c.state?.storedBytes ?? 0,
        changedBlocks: c.state?.changedBlocks ?? 0,
        maxRss: Math.max(c.maxRss, w.maxRss),
      });
      log(
        `interval ${k}: block size ${bs}: ${secs(c.wall)} s cold, ${secs(w.wall)} s warm, ${mb(c.state?.storedBytes ?? 0)} stored`,
      );
    }

    await drop();
    I.rsync = await T.rsyncInplace(img, rsyncCopy, work);
    await drop();
    {
      const m = await mountImage(img, ro, { readOnly: true });
      I.restic = await T.resticBackup(resticRepo, resticCache, ro, work);
      await m.release();
    }
    if (borg) {
      await drop();
      const m = await mountImage(img, ro, { readOnly: true });
      I.borg = await T.borgCreate(borgRepo, borgBase, ro, `s${k}`, work);
      await m.release();
    }
    log(
      `interval ${k}: rsync ${secs(I.rsync.wall)} s / ${mb(I.rsync.literal)} literal; restic ${secs(I.restic.wall)} s / ${mb(I.restic.added)}${borg ? `; borg ${secs(I.borg.wall)} s / ${mb(I.borg.added)}` : ''}`,
    );
    R.intervals.push(I);
  }

  await engine.close();

  // ------------------------------------------------------------------ restore, verify
  const middle = Math.ceil(INTERVALS / 2);
  R.restore.state = middle;
  const target = p('restored.img');
  const ddTarget = p('dd-copy.img');
  log('restore reference: dd write of the image (source in the page cache, conv=fsync)');
  warm(img);
  R.restore.ddWrite = (await T.ddWrite(img, ddTarget, work)).wall;
  fs.rmSync(ddTarget);
  await run('sync', []);

  log(`restore of state ${middle} (archive in the page cache)`);
  warm(archiveCold);
  R.restore.warm = await T.tmRestore(archiveCold, middle, target, work);
  R.restore.targetAllocated = duAllocated(target);
  fs.rmSync(target);
  await run('sync', []);

  log(`restore of state ${middle} (cold cache)`);
  await drop();
  R.restore.cold = await T.tmRestore(archiveCold, middle, target, work);
  fs.rmSync(target);

  log('verify --deep (cold cache)');
  await drop();
  R.verify = await T.tmVerifyDeep(archiveCold, work);
  R.verify.archiveBytes = duBytes(archiveCold);
  R.verify.catalogBytes = T.catalogBytes(archiveCold);

  for (const bs of studySizes) {
    const s = study[bs];
    s.catalogBytes = T.catalogBytes(s.cold);
    s.archiveBytes = duBytes(s.cold);
  }
  R.study = Object.fromEntries(
    Object.entries(study).map(([bs, s]) => [bs, { ...s, cold: undefined, warm: undefined }]),
  );
  R.final = {
    resticRepo: duBytes(resticRepo),
    rsyncCopy: IMAGE_BYTES,
    borgRepo: borg ? duBytes(borgRepo) : null,
    tidemark: duBytes(archiveCold),
  };

  // Free the disk before the sparse image.
  for (const dir of [
    archiveWarm,
    archiveApp,
    archiveAppWarm,
    rsyncCopy,
    resticRepo,
    resticCache,
    borgRepo,
    borgBase,
    ...Object.values(study).flatMap((s) => (s.cold === archiveCold ? [] : [s.cold, s.warm])),
  ]) {
    removeTreeSync(dir);
  }

  // ------------------------------------------------------------------ 64 GiB sparse image
  if (!opt['no-sparse']) R.sparse = await sparseRun(work, drop);

  R.meta.benchSeconds = (Date.now() - started) / 1000;
  R.meta.loadAtEnd = os.loadavg()[0];
  const md = render(R, borg);
  process.stdout.write(md + '\n');
  const out = path.join(HERE, 'results');
  fs.mkdirSync(out, { recursive: true });
  fs.writeFileSync(path.join(out, 'latest.md'), md + '\n');
  fs.writeFileSync(path.join(out, 'latest.json'), JSON.stringify(R, null, 2) + '\n');
  log(`wrote ${path.join(out, 'latest.md')} and latest.json`);
}

/** The commit measured, and whether the engine sources differ from it (others work in parallel). */
async function gitState() {
  const root = path.join(HERE, '..');
  const head = await run('git', ['-C', root, 'rev-parse', '--short', 'HEAD'], { allowFail: true });
  const dirty = await run(
    'git',
    ['-C', root, 'status', '--porcelain', '--', 'src/main/engine', 'src/main/cli'],
    { allowFail: true },
  );
  const files = dirty.stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => l.slice(3));
  return head.code === 0
    ? `${head.stdout.trim()}${files.length ? ` + uncommitted changes in ${files.join(', ')}` : ''}`
    : 'unknown';
}

async function sparseRun(work, drop) {
  const dir = path.join(work, 'sparse');
  fs.mkdirSync(dir);
  const img = path.join(dir, 'sparse.img');
  const archive = path.join(dir, 'tm');
  const S = { size: SPARSE_BYTES };
  await run('truncate', ['-s', String(SPARSE_BYTES), img]);
  log(`sparse: ${mb(SPARSE_BYTES)} image, 300 × 1 MiB of random data in scattered places`);
  await scatter(img, SPARSE_BYTES, SEED * 7919, 300, MiB);
  S.allocated = duAllocated(img);
  await drop();
  S.ddCold = (await T.ddRead(img, work)).wall;
  log('sparse: tidemark init (cold)');
  await drop();
  const init = await T.tmInit(img, archive, work);
  S.baseline = { wall: init.wall, maxRss: init.maxRss, stored: init.state.storedBytes };
  log(
    `sparse: baseline ${secs(init.wall)} s, peak RSS ${mb(init.maxRss)}; interval: 40 × 1 MiB rewritten or new`,
  );
  await scatter(img, SPARSE_BYTES, SEED * 7919 + 1, 40, MiB);
  await drop();
  S.ddCold2 = (await T.ddRead(img, work)).wall;
  await drop();
  const snap = await T.tmSnapshot(archive, work);
  S.interval = { wall: snap.wall, maxRss: snap.maxRss, stored: snap.state?.storedBytes ?? 0 };
  log(`sparse: interval ${secs(snap.wall)} s, peak RSS ${mb(snap.maxRss)}`);
  removeTreeSync(dir);
  return S;
}

// ------------------------------------------------------------------ report

function render(R, borg) {
  const size = R.meta.imageBytes;
  const lines = [];
  const cacheNote = R.meta.coldCache
    ? 'cold: `sync; echo 3 > /proc/sys/vm/drop_caches` before each timed read (dd, tidemark, rsync, restic, borg alike), then each program is started once (`--version`/`--help`; tidemark also snapshots a 4 MiB scratch archive, since `--help` no longer loads the engine) so that only data, not program files, comes from the disk'
    : 'warm only (the page cache could not be dropped)';
  lines.push(`# Tidemark bench — ${R.meta.date}`);
  lines.push('');
  lines.push(
    `${R.meta.cpus}, ${R.meta.memory} RAM, Node ${R.meta.node}. Image: ${mb(size)} ext4 (\`mke2fs -t ext4 -d\`) holding ${R.meta.source.files} system files (${mb(R.meta.source.bytes)}), ` +
      `${R.meta.intervals} intervals of seeded changes (seed ${R.meta.seed}). Tidemark block size ${R.meta.blockSize / 1024} KiB (engine default). ` +
      `MB = 10^6 bytes; MB/s = image size / wall time. Cache state: ${cacheNote}.`,
  );
  lines.push(`Tidemark measured: commit ${R.meta.git} (built by \`npm run bench\` at its start).`);
  lines.push(
    `References: ${R.meta.restic} (repository v${R.meta.resticRepoVersion}); ${R.meta.rsync}${borg ? `; ${R.meta.borg}` : ''}.`,
  );
  lines.push('');

  const rows = [];
  const dd = R.baseline.ddCold;
  rows.push(['dd read of the image (reference, before the baseline)', secs(dd), rate(size, dd)]);
  rows.push([
    'dd write of the image (reference, fsync)',
    secs(R.restore.ddWrite),
    rate(size, R.restore.ddWrite),
  ]);
  const b = R.baseline.tm;
  rows.push([
    'baseline (init)',
    secs(b.wall),
    rate(size, b.wall),
    mb(b.stored),
    `${ratio(b.wall / dd)} dd read`,
    '',
    '',
    mb(b.maxRss),
  ]);
  for (const I of R.intervals) {
    const t = I.tm.wall / I.ddCold;
    rows.push([
      `interval ${I.k}: time`,
      secs(I.tm.wall),
      rate(size, I.tm.wall),
      mb(I.tm.stored),
      `${ratio(t)} dd read`,
      '≤ 1.3×',
      met(t <= 1.3),
      mb(I.tm.maxRss),
    ]);
    const by = I.tm.stored / I.restic.added;
    rows.push([
      `interval ${I.k}: bytes`,
      '',
      '',
      mb(I.tm.stored),
      `${ratio(by)} restic (${mb(I.restic.added)})`,
      '≤ 1.0×',
      met(by <= 1),
      '',
    ]);
  }
  const ddWriteRate = size / R.restore.ddWrite;
  for (const [label, r] of [
    ['cold', R.restore.cold],
    ['archive cached', R.restore.warm],
  ]) {
    const q = size / r.wall / ddWriteRate;
    rows.push([
      `restore state ${R.restore.state} (${label})`,
      secs(r.wall),
      rate(size, r.wall),
      '',
      `${ratio(q)} dd write`,
      '≥ 0.8×',
      met(q >= 0.8),
      mb(r.maxRss),
    ]);
  }
  const v = R.verify;
  rows.push([
    `verify --deep (${v.report.updatesChecked} updates, ${mb(v.archiveBytes)})`,
    secs(v.wall),
    rate(v.report.bytesChecked, v.wall),
    '',
    '',
    '',
    '',
    mb(v.maxRss),
  ]);
  if (R.sparse) {
    const S = R.sparse;
    for (const [label, r, ddT] of [
      ['baseline', S.baseline, S.ddCold],
      ['interval', S.interval, S.ddCold2],
    ]) {
      rows.push([
        `${S.size / GiB} GiB sparse image: ${label}`,
        secs(r.wall),
        rate(S.size, r.wall),
        mb(r.stored),
        `${ratio(r.wall / ddT)} dd read`,
        'RSS ≤ 300 MB',
        met(r.maxRss <= 300e6),
        mb(r.maxRss),
      ]);
    }
  }
  lines.push('## Targets (cold cache)');
  lines.push('');
  lines.push(
    table(['step', 'wall s', 'MB/s', 'bytes added', 'ratio', 'target', 'met?', 'peak RSS'], rows),
  );
  lines.push('');
  lines.push(
    'Bytes added = `storedBytes` of the new state (the update object). restic bytes = growth of the repository folder (`du -sb`). ' +
      `Restore MB/s counts the whole ${mb(size)} image (zero blocks are not written to a new file); it includes the read-back that proves the state hash. ` +
      `dd write = \`dd if=image of=new bs=8M conv=fsync\` with the image in the page cache. Verify MB/s = stored bytes checked / wall.`,
  );
  lines.push('');

  // Per-interval references.
  const ref = [];
  ref.push([
    'baseline',
    '',
    '',
    `${secs(R.baseline.tm.wall)} / ${mb(R.baseline.tm.stored)}`,
    mb(R.baseline.tm.du),
    `${secs(R.baseline.rsync.wall)} / ${mb(R.baseline.rsync.literal)}`,
    `${secs(R.baseline.restic.wall)} / ${mb(R.baseline.restic.added)}`,
    borg ? `${secs(R.baseline.borg.wall)} / ${mb(R.baseline.borg.added)}` : '',
    '',
    secs(R.baseline.ddCold),
  ]);
  for (const I of R.intervals) {
    ref.push([
      `interval ${I.k}`,
      mb(I.changes.written),
      mb(I.imageChanged.total),
      `${secs(I.tm.wall)} / ${mb(I.tm.stored)}`,
      mb(I.tm.du),
      `${secs(I.rsync.wall)} / ${mb(I.rsync.literal)}`,
      `${secs(I.restic.wall)} / ${mb(I.restic.added)}`,
      borg ? `${secs(I.borg.wall)} / ${mb(I.borg.added)}` : '',
      `${secs(I.app.cold)} (${ratio(I.app.cold / I.ddCold)})`,
      secs(I.ddCold),
    ]);
  }
  const avg = (f) => R.intervals.reduce((s, I) => s + f(I), 0) / R.intervals.length;
  const sum = (f) => R.intervals.reduce((s, I) => s + f(I), 0);
  ref.push([
    `interval mean (× dd read)`,
    mb(avg((I) => I.changes.written)),
    mb(avg((I) => I.imageChanged.total)),
    `${ratio(avg((I) => I.tm.wall / I.ddCold))} / ${mb(avg((I) => I.tm.stored))}`,
    mb(avg((I) => I.tm.du)),
    `${ratio(avg((I) => I.rsync.wall / I.ddCold))} / ${mb(avg((I) => I.rsync.literal))}`,
    `${ratio(avg((I) => I.restic.wall / I.ddCold))} / ${mb(avg((I) => I.restic.added))}`,
    borg ? `${ratio(avg((I) => I.borg.wall / I.ddCold))} / ${mb(avg((I) => I.borg.added))}` : '',
    ratio(avg((I) => I.app.cold / I.ddCold)),
    secs(avg((I) => I.ddCold)),
  ]);
  ref.push([
    'after all intervals',
    '',
    '',
    '',
    mb(R.final.tidemark),
    '',
    mb(R.final.resticRepo),
    borg ? mb(R.final.borgRepo) : '',
    '',
    '',
  ]);
  lines.push('## Per interval against the references (cold cache; wall s / bytes added)');
  lines.push('');
  lines.push(
    table(
      [
        'step',
        'written in files',
        'image changed (4 KiB)',
        'tidemark',
        'tidemark du growth',
        'rsync --inplace (literal)',
        'restic',
        borg ? 'borg (zstd,3)' : 'borg',
        'tidemark, engine loaded (app) s',
        'dd read s',
      ],
      ref,
    ),
  );
  lines.push('');
  lines.push(
    '"tidemark" is the CLI (`tidemark snapshot`, a new Node process per interval): the measurement the targets use. ' +
      '"engine loaded (app)" is the same interval as the app and `tidemark serve` run it: the engine already loaded in a long-lived process (EngineHost, the engine in a worker thread), timed around its `snapshot` call, on a copy of the archive that receives the same changes.',
  );
  lines.push('');
  const ch = R.intervals[0]?.changes;
  if (ch) {
    lines.push(
      `Changes per interval (interval 1): ${ch.rewrites} in-place range rewrites, ${ch.replaced} whole-file replacements (write + rename), ${ch.appends} appends, ` +
        `${ch.newFiles} new files, ${ch.renames} renames/moves, ${ch.deletes} deletes (${mb(ch.deletedBytes)}), one small file rewritten ${ch.hotWrites} times with fsync. ` +
        `Total over ${R.intervals.length} intervals: ${mb(sum((I) => I.imageChanged.total))} of the image changed; tidemark stored ${mb(sum((I) => I.tm.stored))}, restic added ${mb(sum((I) => I.restic.added))}.`,
    );
    lines.push('');
  }

  // What changed in the image, and what tidemark read as changed.
  const chRows = R.intervals.map((I) => [
    `interval ${I.k}`,
    mb(I.changes.written),
    mb(I.imageChanged.total),
    mb(I.imageChanged.journal),
    mb(I.imageChanged.inodeTables),
    mb(I.imageChanged.otherMeta),
    mb(I.imageChanged.data),
    `${I.tm.changedBlocks} (${mb(I.tm.changedBlocks * R.meta.blockSize)})`,
    mb(I.tm.stored),
  ]);
  lines.push('## What changed in the image per interval (4 KiB pages that differ, by ext4 region)');
  lines.push('');
  lines.push(
    table(
      [
        'step',
        'written in files',
        'image changed',
        'ext4 journal',
        'inode tables',
        'bitmaps, sb, gdt',
        'file data + dirs',
        `tidemark changed blocks (× ${R.meta.blockSize / 1024} KiB)`,
        'tidemark stored (zstd)',
      ],
      chRows,
    ),
  );
  lines.push('');

  // Warm cache.
  const warmRows = [['baseline dd read', secs(R.baseline.ddWarm), rate(size, R.baseline.ddWarm)]];
  for (const I of R.intervals) {
    const t = I.tmWarm.wall / I.ddWarm;
    warmRows.push([
      `interval ${I.k}`,
      secs(I.tmWarm.wall),
      rate(size, I.tmWarm.wall),
      secs(I.ddWarm),
      `${ratio(t)} dd read`,
      met(t <= 1.3),
      secs(I.app.warm),
      `${ratio(I.app.warm / I.ddWarm)} dd read`,
    ]);
  }
  lines.push(
    '## Intervals with the image in the page cache (warm; same changes, a second archive)',
  );
  lines.push('');
  lines.push(
    table(
      [
        'step',
        'tidemark wall s',
        'MB/s',
        'dd read s',
        'ratio',
        '≤ 1.3× met?',
        'engine loaded (app) s',
        'ratio (app)',
      ],
      warmRows,
    ),
  );
  lines.push('');

  // Block-size study.
  const sizes = Object.keys(R.study)
    .map(Number)
    .sort((a, b) => a - b);
  if (sizes.length > 0) {
    const rowsBs = sizes.map((bs) => {
      const s = R.study[bs];
      const n = s.intervals.length;
      const mean = (f) => s.intervals.reduce((t, x) => t + f(x), 0) / n;
      return [
        `${bs >= MiB ? `${bs / MiB} MiB` : `${bs / 1024} KiB`}${bs === R.meta.blockSize ? ' (default)' : ''}`,
        secs(mean((x) => x.cold)),
        ratio(mean((x) => x.cold) / avg((I) => I.ddCold)),
        secs(mean((x) => x.warm)),
        ratio(mean((x) => x.warm) / avg((I) => I.ddWarm)),
        mb(mean((x) => x.stored)),
        ratio(mean((x) => x.stored) / avg((I) => I.restic.added)),
        `${secs(s.baseline.wall)} / ${mb(s.baseline.stored)}`,
        mb(s.catalogBytes),
        mb(s.archiveBytes),
      ];
    });
    lines.push(
      `## Block-size study (baseline + ${R.intervals.length} intervals each, same images)`,
    );
    lines.push('');
    lines.push(
      table(
        [
          'block size',
          'interval s cold',
          '× dd',
          'interval s warm',
          '× dd',
          'bytes added / interval',
          '× restic',
          'baseline s / size',
          'catalog',
          'archive total',
        ],
        rowsBs,
      ),
    );
    lines.push('');
  }
  lines.push(
    `Bench wall time: ${(R.meta.benchSeconds / 60).toFixed(1)} min. Load average (1 min) at start ${R.meta.loadAtStart.toFixed(2)}, at end ${R.meta.loadAtEnd.toFixed(2)}: other work on the machine makes single runs noisy; the ratios are measured side by side in the same run.`,
  );
  return lines.join('\n');
}

main()
  .catch((err) => {
    process.stderr.write(`bench: ${err.stack ?? err}\n`);
    process.exitCode = 1;
  })
  .finally(() => {
    cleanupAll();
  });
