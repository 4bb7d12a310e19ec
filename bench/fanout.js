#!/usr/bin/env node
// Fan-out benchmark (`npm run build:node && node bench/fanout.js [--size-mib N] [--intervals N]`).
//
// One raw image, two archives of it made in the same run: D has no extra secondary, F has two
// folder secondaries. Each interval changes ~2 % of the image (random 16 KiB blocks); both take
// it with `tidemark snapshot` (timed). F's second secondary is away for the second half of the
// intervals; `tidemark flush` then ships its queue (timed). Prints the cost of fanning out to two
// secondaries next to a snapshot of one archive.
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  BLOCK,
  changeTwoPercent,
  intervalOptions,
  mixedImage,
  printHeader,
  scratch,
} from './lib/interval-bench.js';

const { sizeMiB, intervals } = intervalOptions({ sizeMiB: 128, intervals: 6 });
const { work, tidemark } = scratch('tidemark-fanout-bench-');

try {
  const image = path.join(work, 'disk.img');
  const fd = mixedImage(image, sizeMiB);
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
  for (let k = 0; k < intervals; k++) {
    if (k === Math.floor(intervals / 2)) fs.renameSync(nas, `${nas}.away`);
    changeTwoPercent(fd, sizeMiB);
    const d = tidemark('snapshot', direct, '--json');
    directSecs += d.secs;
    bytes += JSON.parse(d.out).state.storedBytes;
    fannedSecs += tidemark('snapshot', fanned, '--json').secs;
  }
  fs.closeSync(fd);
  fs.renameSync(`${nas}.away`, nas);
  const ship = tidemark('flush', fanned, '--json');
  const shipped = JSON.parse(ship.out).secondaries.find((s) => s.target === nas).shipped.length;
  printHeader(sizeMiB, intervals, bytes);
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
