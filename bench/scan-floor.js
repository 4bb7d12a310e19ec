#!/usr/bin/env node
// The floor under a device interval that must find its changes by reading: the whole image read
// into one 8 MiB buffer and xxh3 over each 256 KiB group (what the scan compares), nothing else
// (no engine, no catalog, no BLAKE3, no writes), against `dd` reading the same file, both with
// the file in the page cache (warm). Not part of CI.
//
//   node bench/scan-floor.js [IMAGE] [--size-mib 2048] [--rounds 5]
//
// Without IMAGE a file of random data is made in /tmp and removed after.
import { spawnSync } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { xxh3 } from '@node-rs/xxhash';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    'size-mib': { type: 'string', default: '2048' },
    rounds: { type: 'string', default: '5' },
  },
});
const rounds = Number(values.rounds);
let image = positionals[0];
let made = null;
if (!image) {
  made = fs.mkdtempSync(path.join(os.tmpdir(), 'tidemark-scan-floor-'));
  image = path.join(made, 'image.bin');
  const chunk = Buffer.allocUnsafe(8 << 20);
  const fd = fs.openSync(image, 'w');
  for (let i = 0; i < Number(values['size-mib']) / 8; i++) fs.writeSync(fd, randomFillSync(chunk));
  fs.closeSync(fd);
}
const size = fs.statSync(image).size;
const GROUP = 256 << 10;
const buffer = Buffer.allocUnsafe(8 << 20);
// As the engine's ScanHasher: the streaming hasher (the one-shot xxh64 binding is ~5x slower).
const hasher = xxh3.Xxh3.withSeed(0n);

function scan() {
  const fd = fs.openSync(image, 'r');
  let sum = 0n;
  const start = process.hrtime.bigint();
  for (let at = 0; at < size;) {
    const n = fs.readSync(fd, buffer, 0, buffer.length, at);
    if (n === 0) break;
    for (let g = 0; g < n; g += GROUP) {
      hasher.reset();
      hasher.update(buffer.subarray(g, Math.min(n, g + GROUP)));
      sum ^= hasher.digest();
    }
    at += n;
  }
  fs.closeSync(fd);
  return { ms: Number(process.hrtime.bigint() - start) / 1e6, sum };
}

function dd() {
  const start = process.hrtime.bigint();
  const r = spawnSync('dd', [`if=${image}`, 'of=/dev/null', 'bs=8M', 'status=none']);
  if (r.status !== 0) throw new Error(`dd failed: ${r.stderr}`);
  return Number(process.hrtime.bigint() - start) / 1e6;
}

try {
  dd(); // into the page cache
  const rows = [];
  for (let i = 0; i < rounds; i++) {
    const d = dd();
    const s = scan().ms;
    rows.push({ dd: d, scan: s, ratio: s / d });
  }
  console.log(`image ${image}, ${(size / 2 ** 30).toFixed(2)} GiB, warm, ${rounds} rounds`);
  for (const r of rows)
    console.log(
      `dd read ${r.dd.toFixed(0)} ms   read + xxh3 ${r.scan.toFixed(0)} ms   ${r.ratio.toFixed(2)}x dd`,
    );
  const ratios = rows.map((r) => r.ratio).sort((a, b) => a - b);
  console.log(
    `floor: ${ratios[0].toFixed(2)}x to ${ratios[ratios.length - 1].toFixed(2)}x dd's read time`,
  );
} finally {
  if (made) fs.rmSync(made, { recursive: true, force: true });
}
