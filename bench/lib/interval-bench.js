// What bench/cache-ship.js and bench/fanout.js share: their options, a scratch folder with its
// own data dir, a timed `tidemark` call, a half-random image and an interval of ~2 % change.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bin/tidemark.js');
export const BLOCK = 16384;

/** `--size-mib N --intervals N`, with this bench's defaults. */
export function intervalOptions(defaults) {
  const { values } = parseArgs({
    options: { 'size-mib': { type: 'string' }, intervals: { type: 'string' } },
  });
  return {
    sizeMiB: Number(values['size-mib'] ?? defaults.sizeMiB),
    intervals: Number(values.intervals ?? defaults.intervals),
  };
}

/** A scratch folder (the caller removes it) and a `tidemark` that runs there and is timed. */
export function scratch(prefix) {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  const env = { ...process.env, TIDEMARK_DATA_DIR: path.join(work, 'data') };
  const tidemark = (...args) => {
    const t = process.hrtime.bigint();
    const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env });
    const secs = Number(process.hrtime.bigint() - t) / 1e9;
    if (r.status !== 0) throw new Error(`tidemark ${args.join(' ')}: ${r.stderr}`);
    return { secs, out: r.stdout };
  };
  return { work, tidemark };
}

function fillRandom(buffer) {
  for (let j = 0; j < buffer.length; j += 4)
    buffer.writeUInt32LE((Math.random() * 2 ** 32) >>> 0, j);
}

/**
 * Writes an image of `sizeMiB` MiB, half random and half repeated text (incompressible and
 * compressible blocks, like a real disk), and returns its descriptor, open for the intervals.
 */
export function mixedImage(image, sizeMiB) {
  const fd = fs.openSync(image, 'w+');
  const chunk = Buffer.alloc(1 << 20);
  for (let i = 0; i < sizeMiB; i++) {
    if (i % 2) fillRandom(chunk);
    else chunk.fill(`file ${i} `);
    fs.writeSync(fd, chunk);
  }
  return fd;
}

/** One interval's change: ~2 % of the image's blocks rewritten at random, then fsynced. */
export function changeTwoPercent(fd, sizeMiB) {
  const blocks = (sizeMiB << 20) / BLOCK;
  const block = Buffer.alloc(BLOCK);
  for (let n = 0; n < blocks / 50; n++) {
    fillRandom(block);
    fs.writeSync(fd, block, 0, BLOCK, Math.floor(Math.random() * blocks) * BLOCK);
  }
  fs.fsyncSync(fd);
}

/** The header of the table both print: seconds, per update, and the ratio to a direct snapshot. */
export function printHeader(sizeMiB, intervals, bytes) {
  const mb = (bytes / 1e6).toFixed(1);
  console.log(`image ${sizeMiB} MiB, ${intervals} intervals of ~2 % change, ${mb} MB of updates`);
  console.log('| what | seconds | per update | vs direct |');
  console.log('| --- | ---: | ---: | ---: |');
}
