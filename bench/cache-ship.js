#!/usr/bin/env node
// Local cache benchmark (`npm run build:node && node bench/cache-ship.js [--size-mib N] [--intervals N]`).
//
// One raw image, two archives of it made in the same run. Each interval changes ~2 % of the
// image (random 16 KiB blocks); archive D takes the interval directly (`tidemark snapshot`, timed),
// archive C takes the same interval while its folder is away (the update goes to the local cache,
// timed). Then C's folder comes back and `tidemark flush` ships the N cached updates (timed).
// Prints the time to ship next to the time the same updates took to write directly.
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
const sizeMiB = Number(values['size-mib'] ?? 256);
const intervals = Number(values.intervals ?? 8);
const BLOCK = 16384;

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tidemark-cache-bench-'));
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
  const fd = fs.openSync(image, 'w');
  const chunk = Buffer.alloc(1 << 20);
  for (let i = 0; i < sizeMiB; i++) {
    // Half random, half repeated text: compressible and incompressible blocks, like a real disk.
    if (i % 2)
      for (let j = 0; j < chunk.length; j += 4)
        chunk.writeUInt32LE((Math.random() * 2 ** 32) >>> 0, j);
    else chunk.fill(`file ${i} `);
    fs.writeSync(fd, chunk);
  }
  const blocks = (sizeMiB << 20) / BLOCK;
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
  const block = Buffer.alloc(BLOCK);
  for (let k = 0; k < intervals; k++) {
    for (let n = 0; n < blocks / 50; n++) {
      for (let j = 0; j < BLOCK; j += 4) block.writeUInt32LE((Math.random() * 2 ** 32) >>> 0, j);
      fs.writeSync(fd, block, 0, BLOCK, Math.floor(Math.random() * blocks) * BLOCK);
    }
    fs.fsyncSync(fd);
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
  const mb = (bytes / 1e6).toFixed(1);
  console.log(`image ${sizeMiB} MiB, ${intervals} intervals of ~2 % change, ${mb} MB of updates`);
  console.log('| what | seconds | per update | vs direct |');
  console.log('| --- | ---: | ---: | ---: |');
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
