#!/usr/bin/env node
// Tidemark S3 benchmark (`npm run bench -- --s3`, or `node bench/s3.js`; needs ceph-mon,
// ceph-osd and radosgw installed, as .ci/run does). Starts the project's Ceph RGW fixture,
// then, in the same run and against the same gateway, in interleaved rounds (raw, plain,
// encrypted, folder; best of --repeat each, so drifting load on a shared machine hits all alike):
//   - the raw SDK PUT rate: the image's bytes (random, like the image) as 8 MiB PutObjects, 4 in
//     flight (the same part size and parallelism Tidemark's uploads use), with
//     @aws-sdk/client-s3 directly, bodies prepared in memory before the clock starts;
//   - an interval in which every block of an incompressible image changed, to an s3:// archive,
//     plain and encrypted, each in its own process (bench/s3-interval.js): upload throughput =
//     bytes of the update object / time of the interval (the engine's snapshot call: open and
//     unlock the archive, read and hash the image, compress, encrypt, upload, confirm, record in
//     the catalog). The whole process (Node start-up and module loading included) is reported
//     beside it;
//   - the same interval to a folder archive on the local disk, for what the engine itself costs;
//   - the s3:// intervals as the app and `tidemark serve` run them: in a long-lived engine worker
//     (EngineHost) that showed the archive's states first (and so holds an encrypted one's key).
// Target: Tidemark's interval at >= 0.8x the raw PUT rate. Tables go to stdout and
// bench/results/s3-latest.md.
import { execFileSync, spawnSync } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { CreateBucketCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { mb, ratio, secs, table } from './lib/report.js';
import { engineSession } from './lib/tools.js';

// The SDK is pinned; its notice that later versions need Node 22 would only clutter the output.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..');
const CLI = path.join(ROOT, 'bin/tidemark.js');
const INTERVAL = path.join(HERE, 's3-interval.js');
const FIXTURE = path.join(ROOT, 'test/fixtures/s3');
const MiB = 1024 ** 2;

const { values: opt } = parseArgs({
  options: {
    'image-mib': { type: 'string', default: '256' },
    repeat: { type: 'string', default: '2' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (opt.help) {
  process.stdout.write(`usage: node bench/s3.js [--image-mib N] [--repeat N]
  --image-mib N   size of the image, all of it changed per interval (default 256)
  --repeat N      runs of each measurement; the best is reported (default 2)
`);
  process.exit(0);
}
const IMAGE = Number(opt['image-mib']) * MiB;
const REPEAT = Number(opt.repeat);

const cephEnv = {
  ...process.env,
  CEPH_DIR: '/tmp/tidemark-rgw-bench',
  RGW_PORT: '7494',
  MON_PORT: '3394',
  // Per round: the raw PUT, two store-alone objects, and init + interval for each of the four
  // s3:// intervals (memstore keeps everything in memory).
  OSD_SIZE_GB: String(Math.ceil((IMAGE * REPEAT * 12) / 1024 ** 3) + 2),
};
const stop = () => spawnSync(path.join(FIXTURE, 'stop-rgw.sh'), { env: cephEnv, stdio: 'inherit' });
process.on('SIGINT', () => {
  stop();
  process.exit(130);
});
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tidemark-s3-bench-'));
const vars = Object.fromEntries(
  execFileSync(path.join(FIXTURE, 'start-rgw.sh'), { env: cephEnv, encoding: 'utf8' })
    .split('\n')
    .filter((l) => l.includes('='))
    .map((l) => l.split('=', 2)),
);
const env = {
  ...process.env,
  AWS_ACCESS_KEY_ID: vars.S3_ACCESS_KEY,
  AWS_SECRET_ACCESS_KEY: vars.S3_SECRET_KEY,
  AWS_ENDPOINT_URL: vars.S3_ENDPOINT,
  AWS_REGION: vars.S3_REGION,
  TIDEMARK_STATE_DIR: path.join(work, 'state'),
  TIDEMARK_PASSPHRASE: 'benchmark passphrase',
};

function tidemark(...args) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(process.execPath, [CLI, ...args, '--json'], { env, encoding: 'utf8' });
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.status !== 0) throw new Error(`tidemark ${args.join(' ')}: ${r.stderr}`);
  return { s, out: JSON.parse(r.stdout) };
}

function fillImage(file) {
  const fd = fs.openSync(file, 'w');
  const chunk = Buffer.allocUnsafe(8 * MiB);
  for (let at = 0; at < IMAGE; at += chunk.length) fs.writeSync(fd, randomFillSync(chunk));
  fs.closeSync(fd);
}

async function rawPut(run) {
  const client = new S3Client({
    endpoint: vars.S3_ENDPOINT,
    region: vars.S3_REGION,
    forcePathStyle: true,
    credentials: { accessKeyId: vars.S3_ACCESS_KEY, secretAccessKey: vars.S3_SECRET_KEY },
    requestChecksumCalculation: 'WHEN_REQUIRED',
  });
  await client.send(new CreateBucketCommand({ Bucket: 'raw' })).catch(() => undefined);
  const part = 8 * MiB;
  const bodies = [];
  for (let at = 0; at < IMAGE; at += part) bodies.push(randomFillSync(Buffer.allocUnsafe(part)));
  const t0 = process.hrtime.bigint();
  let next = 0;
  const worker = async () => {
    while (next < bodies.length) {
      const i = next++;
      await client.send(
        new PutObjectCommand({ Bucket: 'raw', Key: `r${run}/${i}`, Body: bodies[i] }),
      );
    }
  };
  await Promise.all([worker(), worker(), worker(), worker()]);
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  client.destroy();
  return { s, bytes: IMAGE };
}

/**
 * The upload path alone: the same random bytes written through Tidemark's S3 store (and through
 * its encryption over it) in 4 MiB writes, as the update writer does, then committed (the
 * server-checked SHA-256 of every part and the HEAD confirmation included). No engine work.
 */
async function storeOnly(run, encrypted) {
  const { S3Store, parseS3Name } = await import('../out/node/main/engine/storage/s3-store.js');
  const { EncryptedStore } = await import('../out/node/main/engine/encryption/encrypted-store.js');
  const s3 = new S3Store(parseS3Name(`s3://store/${encrypted ? 'enc' : 'plain'}-${run}/`), {
    endpoint: vars.S3_ENDPOINT,
    region: vars.S3_REGION,
    credentials: { accessKeyId: vars.S3_ACCESS_KEY, secretAccessKey: vars.S3_SECRET_KEY },
  });
  await s3.ensureBucket();
  const store = encrypted ? new EncryptedStore(s3, randomFillSync(Buffer.alloc(32)), 65536) : s3;
  const data = randomFillSync(Buffer.allocUnsafe(IMAGE));
  const t0 = process.hrtime.bigint();
  const w = await store.create('updates/0000000001.tmu');
  for (let at = 0; at < IMAGE; at += 4 * MiB) await w.write(data.subarray(at, at + 4 * MiB));
  await w.commit();
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  await store.close();
  return { s, bytes: IMAGE };
}

function interval(archive, extra = []) {
  const image = path.join(work, 'disk.img');
  fillImage(image);
  tidemark('init', image, archive, ...extra);
  fillImage(image);
  const t0 = process.hrtime.bigint();
  const r = spawnSync(process.execPath, [INTERVAL, archive], { env, encoding: 'utf8' });
  const whole = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.status !== 0) throw new Error(`interval of ${archive}: ${r.stderr}`);
  const { s, bytes } = JSON.parse(r.stdout);
  return { s, bytes, whole };
}

/**
 * The same interval as the app and `tidemark serve` run it: the engine already loaded in a
 * long-lived worker (EngineHost) that has shown the archive's states before (which unlocked an
 * encrypted archive's key, kept for the process), timed around its `snapshot` call.
 */
async function appInterval(session, archive, extra = []) {
  const image = path.join(work, 'disk.img');
  fillImage(image);
  tidemark('init', image, archive, ...extra);
  await session.open(archive);
  fillImage(image);
  // The engine worker is a thread of this process, idle but for this call: the process's CPU
  // time and page faults across it are the interval's.
  const before = process.resourceUsage();
  const r = await session.snapshot(archive);
  const after = process.resourceUsage();
  if (!r.changed) throw new Error(`the interval of ${archive} recorded nothing`);
  appCost.push({
    archive,
    cpu:
      (after.userCPUTime + after.systemCPUTime - before.userCPUTime - before.systemCPUTime) / 1e6,
    faults: after.minorPageFault - before.minorPageFault,
  });
  return { s: r.wall, bytes: r.state.storedBytes };
}

/** Client CPU seconds and page faults of each app interval, in the order run. */
const appCost = [];

const rate = (r) => r.bytes / r.s;
const better = (a, b) => (!a || rate(b) > rate(a) ? b : a);

try {
  let raw, plain, enc, local, storePlain, storeEnc, appPlain, appEnc;
  // The engine worker reads the server and the passphrase from the environment it starts with.
  Object.assign(process.env, env);
  const session = await engineSession();
  for (let i = 0; i < REPEAT; i++) {
    raw = better(raw, await rawPut(i));
    storePlain = better(storePlain, await storeOnly(i, false));
    storeEnc = better(storeEnc, await storeOnly(i, true));
    plain = better(plain, interval(`s3://bench/plain-${i}`, ['--no-encrypt']));
    enc = better(enc, interval(`s3://bench/enc-${i}`));
    local = better(local, interval(path.join(work, `folder-${i}`)));
    appPlain = better(
      appPlain,
      await appInterval(session, `s3://bench/app-plain-${i}`, ['--no-encrypt']),
    );
    appEnc = better(appEnc, await appInterval(session, `s3://bench/app-enc-${i}`));
  }
  await session.close();
  const vsRaw = (r) => ratio(rate(r) / rate(raw));
  const row = (name, r) => [
    name,
    mb(r.bytes),
    secs(r.s),
    `${mb(rate(r))}/s`,
    vsRaw(r),
    r.whole ? secs(r.whole) : '',
    r.whole ? ratio(r.bytes / r.whole / rate(raw)) : '',
  ];
  const md = [
    `## S3 upload (Ceph RGW on 127.0.0.1, memstore; ${os.cpus().length} cores; image ${IMAGE / MiB} MiB, every block changed; best of ${REPEAT}, interleaved)`,
    '',
    table(
      ['what', 'bytes', 'time', 'throughput', 'vs raw SDK PUT', 'whole process', 'vs raw (whole)'],
      [
        row('raw SDK PutObject, 8 MiB, 4 in flight', raw),
        row('S3 store alone (plain), 4 MiB writes', storePlain),
        row('S3 store alone (encrypted), 4 MiB writes', storeEnc),
        row('interval -> s3:// (plain)', plain),
        row('interval -> s3:// (encrypted)', enc),
        row('interval -> local folder', local),
        row('interval -> s3:// (plain), engine loaded (app)', appPlain),
        row('interval -> s3:// (encrypted), engine loaded (app)', appEnc),
      ],
    ),
    '',
    `Target: interval to s3:// >= 0.8x raw PUT: plain ${vsRaw(plain)}, encrypted ${vsRaw(enc)}` +
      ` (the upload path alone: plain ${vsRaw(storePlain)}, encrypted ${vsRaw(storeEnc)};` +
      ` as the app runs it: plain ${vsRaw(appPlain)}, encrypted ${vsRaw(appEnc)}).`,
    'Same gateway, same run. Bytes: the raw PUT sends the image; an interval sends its update',
    '(every block, record headers and block map; encrypted: +16 B per 64 KiB). Time of an',
    'interval: the engine snapshot call (open + unlock, read + hash the image, compress, encrypt,',
    'upload, confirm, catalog); "whole process" adds Node start-up and module loading. "S3 store',
    'alone": the same bytes through the store Tidemark uploads with, no engine work. "Engine',
    'loaded (app)": the interval as the app and `tidemark serve` run it, in a long-lived engine',
    "worker that showed the archive first: no module loading, and an encrypted archive's key",
    'was unlocked then (scrypt, ~0.65 s here) and kept by the process.',
    '',
    'Client cost of each app interval (this process, engine worker included), in the order run:',
    '',
    table(
      ['interval', 'client CPU', 'page faults'],
      appCost.map((c) => [c.archive, `${c.cpu.toFixed(2)} s`, String(c.faults)]),
    ),
  ].join('\n');
  process.stdout.write(md + '\n');
  fs.mkdirSync(path.join(HERE, 'results'), { recursive: true });
  fs.writeFileSync(path.join(HERE, 'results', 's3-latest.md'), md + '\n');
} finally {
  fs.rmSync(work, { recursive: true, force: true });
  stop();
}
