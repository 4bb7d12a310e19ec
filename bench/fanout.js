#!/usr/bin/env node
// Fan-out benchmark (`npm run build:node && node bench/fanout.js [--size-mib N] [--intervals N]`).
//
// One raw image, two archives of it made in the same run: D has no extra secondary, F has two
// folder secondaries. Each interval changes ~2 % of the image (random 16 KiB blocks); both take
// it with `tidemark snapshot` (timed). F's second secondary is away for the second half of the
// intervals; `tidemark flush` then ships its queue (timed). Prints the cost of fanning out to two
// secondaries next to a snapshot of one archive.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../bin/tidemark.js');
const { values } = parseArgs({
  options: { 'size-mib': { type: 'string' }, intervals: { type: 'string' } },
});
const sizeMiB = Number(values['size-mib'] ?? 128);
const intervals = Number(values.intervals ?? 6);
const BLOCK = 16384;

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tidemark-fanout-bench-'));
const env = { ...process.env, TIDEMARK_DATA_DIR: path.join(work, 'data') };
function tidemark(...args) {
  const t = process.hrtime.bigint();
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env });
  const secs = Number(process.hrtime.bigint() - t) / 1e9;
  if (r.status !== 0) throw new Error(`tidemark ${args.join(' ')}: ${r.stderr}`);
  return { secs, out: r.stdout };
}

try {
  const image = path.join(work, 'disk.img');
  const fd = fs.openSync(image, 'w+');
  const chunk = Buffer.alloc(1 << 20);
  for (let i = 0; i < sizeMiB; i++) {
    if (i % 2)
      for (let j = 0; j < chunk.length; j += 4)
        chunk.writeUInt32LE((Math.random() * 2 ** 32) >>> 0, j);
    else chunk.fill(`file ${i} `);
    fs.writeSync(fd, chunk);
  }
  const blocks = (sizeMiB << 20) / BLOCK;
  const direct = path.join(work, 'direct');
  const fanned = path.join(work, 'fanned');
  const [usb, nas] = [path.join(work, 'usb'), path.join(work, 'nas')];
  tidemark('init', image, direct, '--block-size', String(BLOCK));
  tidemark('init', image, fanned, '--block-size', String(BLOCK));
  const add =
    tidemark('secondary', 'add', fanned, usb).secs + tidemark('secondary', 'add', fanned, nas).secs;
  let directSecs = 0;
  let fannedSecs = 0;
  let bytes = 0;
  const block = Buffer.alloc(BLOCK);
  for (let k = 0; k < intervals; k++) {
    if (k === Math.floor(intervals / 2)) fs.renameSync(nas, `${nas}.away`);
    for (let n = 0; n < blocks / 50; n++) {
      for (let j = 0; j < BLOCK; j += 4) block.writeUInt32LE((Math.random() * 2 ** 32) >>> 0, j);
      fs.writeSync(fd, block, 0, BLOCK, Math.floor(Math.random() * blocks) * BLOCK);
    }
    fs.fsyncSync(fd);
    const d = tidemark('snapshot', direct, '--json');
    directSecs += d.secs;
    bytes += JSON.parse(d.out).state.storedBytes;
    fannedSecs += tidemark('snapshot', fanned, '--json').secs;
  }
  fs.closeSync(fd);
  fs.renameSync(`${nas}.away`, nas);
  const ship = tidemark('flush', fanned, '--json');
  const shipped = JSON.parse(ship.out).secondaries.find((s) => s.target === nas).shipped.length;
  console.log(
    `image ${sizeMiB} MiB, ${intervals} intervals of ~2 % change, ${(bytes / 1e6).toFixed(1)} MB of updates`,
  );
  console.log('| what | seconds | per update | vs direct |');
  console.log('| --- | ---: | ---: | ---: |');
  const row = (what, s, n = intervals) =>
    console.log(
      `| ${what} | ${s.toFixed(2)} | ${(s / n).toFixed(2)} | ${(s / n / (directSecs / intervals)).toFixed(2)}× |`,
    );
  row('snapshot, no extra secondary', directSecs);
  row('snapshot + fan-out to 2 folder secondaries', fannedSecs);
  row(`flush: ${shipped} queued updates to the one that was away`, ship.secs, Math.max(shipped, 1));
  console.log(`(secondary add of both, baseline copied: ${add.toFixed(2)} s)`);
} finally {
  fs.rmSync(work, { recursive: true, force: true });
}
