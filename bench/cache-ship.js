#!/usr/bin/env node
// Local cache benchmark (`npm run build:node && node bench/cache-ship.js [--size-mib N] [--intervals N]`).
//
// One raw image, two archives of it made in the same run. Each interval changes ~2 % of the
// image (random 16 KiB blocks); archive D takes the interval directly (`tidemark snapshot`, timed),
// archive C takes the same interval while its folder is away (the update goes to the local cache,
// timed). Then C's folder comes back and `tidemark flush` ships the N cached updates (timed).
// Prints the time to ship next to the time the same updates took to write directly.
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

const { sizeMiB, intervals } = intervalOptions({ sizeMiB: 256, intervals: 8 });
const { work, tidemark } = scratch('tidemark-cache-bench-');

try {
  const image = path.join(work, 'disk.img');
  const fd = mixedImage(image, sizeMiB);
  const direct = path.join(work, 'direct');
  const cached = path.join(work, 'cached');
  const cacheDir = path.join(work, 'cache');
  tidemark('init', image, direct, '--block-size', String(BLOCK));
  tidemark('init', image, cached, '--block-size', String(BLOCK));
  tidemark('snapshot', cached, '--cache-dir', cacheDir, '--cache-limit', '64G');
  fs.renameSync(cached, `${cached}.away`);
  let directSecs = 0;
  let cacheSecs = 0;
  let bytes = 0;
  for (let k = 0; k < intervals; k++) {
    changeTwoPercent(fd, sizeMiB);
    const d = tidemark('snapshot', direct, '--json');
    directSecs += d.secs;
    bytes += JSON.parse(d.out).state.storedBytes;
    const c = tidemark('snapshot', cached, '--json');
    if (JSON.parse(c.out).location !== 'cache')
      throw new Error('the update did not go to the cache');
    cacheSecs += c.secs;
  }
  fs.closeSync(fd);
  fs.renameSync(`${cached}.away`, cached);
  const ship = tidemark('flush', cached, '--json');
  const shipped = JSON.parse(ship.out).shipped.length;
  printHeader(sizeMiB, intervals, bytes);
  const row = (what, s) =>
    console.log(
      `| ${what} | ${s.toFixed(2)} | ${(s / intervals).toFixed(2)} | ${(s / directSecs).toFixed(2)}× |`,
    );
  row('snapshot to the secondary (direct)', directSecs);
  row('snapshot into the local cache', cacheSecs);
  row(`flush: ship ${shipped} cached updates`, ship.secs);
} finally {
  fs.rmSync(work, { recursive: true, force: true });
}
