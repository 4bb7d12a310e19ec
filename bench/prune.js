#!/usr/bin/env node
// Retention benchmark: `npm run build:node && node bench/prune.js [--mib 2048] [--states 30]`.
//
// A raw image (default 2 GiB: 60 % random data, 15 % repeated text, the rest zeros) gets a
// baseline and N intervals of about 1.5 % change (new random data, text, zeroed regions, and a
// region copied back from an earlier state). Every 5th state is pinned, then `tidemark prune`
// drops every other state (a policy evaluated far in the future with all windows at 0): 4
// collapses of middle runs and one integration into the base. Printed: prune time, bytes freed
// (prune's own report and `du` of the archive), and, as a reference measured in the same run,
// `cp` of the baseline update file (the integration rewrites the base's blocks still in use).
// One kept state is restored and compared with a copy of the image at its point.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: { mib: { type: 'string', default: '2048' }, states: { type: 'string', default: '30' } },
});
const MIB = 1 << 20;
const SIZE = Number(values.mib) * MIB;
const STATES = Number(values.states);
const CLI = path.resolve(import.meta.dirname, '../bin/tidemark.js');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tidemark-bench-prune-'));
const image = path.join(dir, 'disk.img');
const arch = path.join(dir, 'archive');

function cli(...args) {
  const t = performance.now();
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', maxBuffer: 64 * MIB });
  if (r.status !== 0) throw new Error(`tidemark ${args.join(' ')}: ${r.stderr}`);
  return { out: r.stdout, secs: (performance.now() - t) / 1000 };
}
const du = (p) => Number(execFileSync('du', ['-sb', p], { encoding: 'utf8' }).split('\t')[0]);
const sha = (file) => {
  const h = createHash('sha256');
  const fd = fs.openSync(file, 'r');
  const buf = Buffer.allocUnsafe(8 * MIB);
  let n;
  while ((n = fs.readSync(fd, buf, 0, buf.length, null)) > 0) h.update(buf.subarray(0, n));
  fs.closeSync(fd);
  return h.digest('hex');
};
const text = Buffer.from('the quick brown fox jumps over the lazy dog 0123456789\n'.repeat(20000));

try {
  const fd = fs.openSync(image, 'w+');
  fs.ftruncateSync(fd, SIZE);
  for (let at = 0; at < SIZE * 0.6; at += 16 * MIB)
    fs.writeSync(fd, randomBytes(16 * MIB), 0, 16 * MIB, at);
  for (let at = SIZE * 0.6; at < SIZE * 0.75; at += text.length)
    fs.writeSync(fd, text, 0, text.length, at);
  const init = cli('init', image, arch);
  let snapSecs = 0;
  let keep = { id: -1, sha: '' };
  const saved = Buffer.allocUnsafe(4 * MIB);
  fs.readSync(fd, saved, 0, saved.length, 0);
  for (let k = 1; k <= STATES; k++) {
    let changed = 0;
    while (changed < SIZE * 0.015) {
      const length = Math.min(1 + Math.floor(Math.random() * 4 * MIB), 4 * MIB);
      const at = Math.floor(Math.random() * (SIZE - length));
      const kind = Math.random();
      const data =
        kind < 0.6
          ? randomBytes(length)
          : kind < 0.85
            ? text.subarray(0, Math.min(length, text.length))
            : Buffer.alloc(length);
      fs.writeSync(fd, data, 0, data.length, at);
      changed += data.length;
    }
    if (k % 7 === 0) fs.writeSync(fd, saved, 0, saved.length, 0);
    const snap = cli('snapshot', arch);
    snapSecs += snap.secs;
    if (!snap.out.startsWith(`state ${k} `)) throw new Error(`snapshot ${k}: ${snap.out}`);
    if (k % 5 === 0) cli('pin', arch, String(k));
    if (k === 5 * Math.max(1, Math.floor(STATES / 10))) keep = { id: k, sha: sha(image) };
  }
  fs.closeSync(fd);
  const before = du(arch);
  const base = path.join(arch, 'updates', '0000000000.tmu');
  const t = performance.now();
  execFileSync('cp', [base, path.join(dir, 'base-copy')]);
  execFileSync('sync');
  const cpSecs = (performance.now() - t) / 1000;
  const baseSize = fs.statSync(base).size;
  const prune = cli(
    'prune',
    arch,
    '--json',
    '--now',
    '2040-01-01T00:00:00Z',
    '--keep-within',
    '1s',
    '--keep-hourly',
    '0',
    '--keep-daily',
    '0',
    '--keep-weekly',
    '0',
  );
  const report = JSON.parse(prune.out);
  const after = du(arch);
  cli('restore', arch, '--state', String(keep.id), '--to', path.join(dir, 'restored'));
  const same = sha(path.join(dir, 'restored')) === keep.sha;
  const gib = (n) => `${(n / 2 ** 30).toFixed(2)} GiB`;
  console.log(
    `image ${gib(SIZE)}, ${STATES + 1} states (init ${init.secs.toFixed(1)} s, ${STATES} snapshots ${snapSecs.toFixed(1)} s)`,
  );
  console.log(
    `prune: ${report.dropped} of ${report.states.length} states dropped in ${report.runs.length} collapses, ${prune.secs.toFixed(1)} s (CLI wall time)`,
  );
  console.log(
    `freed: ${gib(report.bytesFreed)} by prune's report; du ${gib(before)} -> ${gib(after)} (${gib(before - after)})`,
  );
  console.log(
    `reference: cp of the ${gib(baseSize)} baseline update + sync ${cpSecs.toFixed(1)} s; prune/cp = ${(prune.secs / cpSecs).toFixed(2)}x`,
  );
  console.log(`state ${keep.id} restored after the prune: ${same ? 'identical' : 'DIFFERENT'}`);
  if (!same) process.exitCode = 1;
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
