/**
 * Fan-out: an archive with extra secondaries (folders, an encrypted one, a bucket). Each update
 * goes to each; one that is away falls behind (its queue in the local cache) and catches up in
 * order; each keeps its own retention and encryption; every state restores byte-identical from
 * each secondary alone; a kill while shipping to one leaves it consistent and the next flush
 * finishes.
 */
import { spawnSync } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { SecondaryStatus, StateInfo } from '../../src/shared/states.js';
import { CLI, tidemark, tidemarkJson } from '../helpers/cli.js';
import { DROP_ALL_BUT_PINNED } from '../helpers/prune-kill.mjs';
import { rgwSkipReason, startRgw, type Rgw } from '../helpers/rgw.js';
import { sha256, tempDir } from '../helpers/tmp.js';

type Listed = StateInfo & { location: string; secondaries?: string[] };
interface SnapshotJson {
  location: 'secondary' | 'cache';
  state?: StateInfo;
  secondaries?: SecondaryStatus[];
}

const BLOCK = 16384;

beforeEach(() => {
  process.env.TIDEMARK_DATA_DIR = tempDir('tidemark-data-');
  process.env.TIDEMARK_STATE_DIR = tempDir('tidemark-state-');
});
afterEach(() => {
  delete process.env.TIDEMARK_DATA_DIR;
  delete process.env.TIDEMARK_STATE_DIR;
  delete process.env.TIDEMARK_CRASH_AT;
});

function write(image: string, at: number, data: Buffer): void {
  const fd = fs.openSync(image, 'r+');
  fs.writeSync(fd, data, 0, data.length, at * BLOCK);
  fs.closeSync(fd);
}

function scribble(image: string, at: number, count: number): void {
  write(image, at, randomFillSync(Buffer.alloc(count * BLOCK)));
}

function ok(...args: string[]): string {
  const r = tidemark(...args);
  expect(r.code, `tidemark ${args.join(' ')}: ${r.stderr}`).toBe(0);
  return r.stdout;
}

/** A device archive (state 0) of a 2 MiB image with two folder secondaries added. */
function setup() {
  const work = tempDir();
  const image = path.join(work, 'disk.img');
  fs.writeFileSync(image, randomFillSync(Buffer.alloc(2 << 20)));
  const arch = path.join(work, 'arch');
  const usb = path.join(work, 'usb');
  const nas = path.join(work, 'nas');
  ok('init', image, arch, '--block-size', String(BLOCK));
  const sums = [sha256(image)];
  for (const m of [usb, nas]) {
    const added = tidemarkJson<SecondaryStatus>('secondary', 'add', arch, m);
    expect(added).toMatchObject({ target: m, reachable: true, behind: 0, queued: 0 });
    expect(added.lastState?.id).toBe(0);
  }
  return { work, image, arch, usb, nas, sums };
}

function point(arch: string, ...flags: string[]): SnapshotJson {
  return tidemarkJson<SnapshotJson>('snapshot', arch, ...flags);
}

function restoredSha(arch: string, state: number, work: string, ...flags: string[]): string {
  const target = path.join(work, `r-${state}-${Math.random().toString(36).slice(2)}.img`);
  ok('restore', arch, '--state', String(state), '--to', target, ...flags);
  const sum = sha256(target);
  fs.rmSync(target);
  return sum;
}

/** Restores every state from `arch` alone (the main secondary moved away meanwhile). */
function expectAllRestore(arch: string, sums: string[], work: string, ...flags: string[]): void {
  const ids = tidemarkJson<StateInfo[]>('states', arch, ...flags).map((s) => s.id);
  expect(ids).toEqual([...sums.keys()]);
  for (const id of ids) expect(restoredSha(arch, id, work, ...flags), `state ${id}`).toBe(sums[id]);
}

function statusOf(list: SecondaryStatus[] | undefined, target: string): SecondaryStatus {
  const s = list?.find((x) => x.target === target);
  if (!s) throw new Error(`no status of ${target}`);
  return s;
}

describe('fan-out to several folder secondaries', () => {
  it('one away for several intervals falls behind, catches up in order; each restores alone', () => {
    const { work, image, arch, usb, nas, sums } = setup();
    scribble(image, 3, 2);
    const first = point(arch);
    sums.push(sha256(image));
    expect(statusOf(first.secondaries, usb)).toMatchObject({ shipped: [1], behind: 0 });
    expect(statusOf(first.secondaries, nas)).toMatchObject({ shipped: [1], behind: 0 });

    fs.renameSync(nas, `${nas}.away`);
    for (let k = 2; k <= 4; k++) {
      scribble(image, 10 * k, 3);
      const r = point(arch);
      sums.push(sha256(image));
      expect(r.state?.id).toBe(k);
      expect(statusOf(r.secondaries, usb)).toMatchObject({ reachable: true, shipped: [k] });
      const away = statusOf(r.secondaries, nas);
      expect(away).toMatchObject({ reachable: false, shipped: [], behind: k - 1, queued: k - 1 });
      expect(away.lastState?.id).toBe(1);
      expect(away.error).toMatch(/is gone/);
    }
    expect(fs.existsSync(nas)).toBe(false);
    const listed = tidemarkJson<SecondaryStatus[]>('secondary', 'list', arch);
    expect(listed.map((s) => [s.target, s.reachable, s.lastState?.id, s.behind])).toEqual([
      [usb, true, 4, 0],
      [nas, false, 1, 3],
    ]);
    const states = tidemarkJson<Listed[]>('states', arch);
    expect(states.map((s) => s.secondaries)).toEqual([[usb, nas], [usb, nas], [usb], [usb], [usb]]);

    fs.renameSync(`${nas}.away`, nas);
    const flushed = JSON.parse(ok('flush', arch, '--json')) as { secondaries: SecondaryStatus[] };
    expect(statusOf(flushed.secondaries, nas)).toMatchObject({
      reachable: true,
      shipped: [2, 3, 4],
      behind: 0,
      queued: 0,
    });
    // The queue copies leave the cache once their secondary has them.
    const queues = path.join(process.env.TIDEMARK_DATA_DIR!, 'cache');
    const leftover = fs
      .readdirSync(queues, { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile() && e.name.endsWith('.tmu'));
    expect(leftover).toEqual([]);

    // Same times on every secondary, and each one restores every state without the others.
    const times = tidemarkJson<StateInfo[]>('states', arch).map((s) => s.time);
    fs.renameSync(arch, `${arch}.gone`);
    for (const m of [usb, nas]) {
      expect(tidemarkJson<StateInfo[]>('states', m).map((s) => s.time)).toEqual(times);
      expectAllRestore(m, sums, work);
    }
    fs.renameSync(`${arch}.gone`, arch);
    // The main secondary away, the extra ones there: they still get each new update (via the cache).
    fs.renameSync(arch, `${arch}.gone`);
    scribble(image, 70, 1);
    const viaCache = point(arch);
    expect(viaCache.location).toBe('cache');
    expect(statusOf(viaCache.secondaries, usb).shipped).toEqual([5]);
    sums.push(sha256(image));
    expect(restoredSha(usb, 5, work)).toBe(sums[5]);
  }, 240_000);

  it('prune on one leaves the other alone; the pruned one still takes later updates', () => {
    const { work, image, arch, usb, nas, sums } = setup();
    const old = fs.readFileSync(image).subarray(40 * BLOCK, 44 * BLOCK);
    for (let k = 1; k <= 3; k++) {
      scribble(image, 40, 4);
      point(arch);
      sums.push(sha256(image));
    }
    const before = tidemarkJson<StateInfo[]>('states', nas);
    ok('prune', usb, ...DROP_ALL_BUT_PINNED);
    expect(tidemarkJson<StateInfo[]>('states', usb).map((s) => s.id)).toEqual([3]);
    expect(tidemarkJson<StateInfo[]>('states', nas)).toEqual(before);
    // The content of state 0 comes back: the main archive stores no new block for it, but the
    // pruned secondary dropped those blocks; its copy of the update carries them.
    write(image, 40, Buffer.from(old));
    const r = point(arch);
    sums.push(sha256(image));
    expect(r.state?.storedBytes).toBeLessThan(BLOCK);
    expect(statusOf(r.secondaries, usb)).toMatchObject({ shipped: [4], behind: 0 });
    expect(statusOf(r.secondaries, nas)).toMatchObject({ shipped: [4], behind: 0 });
    expect(restoredSha(usb, 4, work)).toBe(sums[4]);
    expect(JSON.parse(ok('verify', usb, '--json')).ok).toBe(true);
    expectAllRestore(nas, sums, work);
  }, 240_000);

  it('a kill while shipping to one leaves it consistent; the next flush finishes', () => {
    const { work, image, arch, usb, nas, sums } = setup();
    fs.renameSync(nas, `${nas}.away`);
    for (let k = 1; k <= 3; k++) {
      scribble(image, 5 * k, 2);
      point(arch);
      sums.push(sha256(image));
    }
    fs.renameSync(`${nas}.away`, nas);
    for (const at of ['mirror-committed:2', 'mirror-recorded:3']) {
      const r = spawnSync(process.execPath, [CLI, 'flush', arch], {
        encoding: 'utf8',
        env: { ...process.env, TIDEMARK_CRASH_AT: at },
      });
      expect(r.signal).toBe('SIGKILL');
      // Whatever it holds restores and verifies; it is only behind.
      expect(JSON.parse(ok('verify', nas, '--json')).ok).toBe(true);
    }
    const done = JSON.parse(ok('flush', arch, '--json')) as { secondaries: SecondaryStatus[] };
    expect(statusOf(done.secondaries, nas)).toMatchObject({ behind: 0, queued: 0 });
    expectAllRestore(nas, sums, work);
    expect(tidemarkJson<StateInfo[]>('states', usb).map((s) => s.id)).toEqual([0, 1, 2, 3]);
  }, 240_000);

  it('bad input: the archive itself, twice the same, unknown subcommand, removal', () => {
    const { arch, usb, work } = setup();
    expect(tidemark('secondary', 'add', arch, arch).stderr).toMatch(/the archive itself/);
    const twice = tidemark('secondary', 'add', arch, usb);
    expect(twice.code).not.toBe(0);
    expect(twice.stderr).toMatch(/already a secondary/);
    const full = path.join(work, 'full');
    fs.mkdirSync(full);
    fs.writeFileSync(path.join(full, 'x'), 'x');
    const notEmpty = tidemark('secondary', 'add', arch, full);
    expect(notEmpty.code).not.toBe(0);
    expect(fs.readdirSync(full)).toEqual(['x']);
    expect(tidemark('secondary', 'frob', arch).stderr).toMatch(/add, list or remove/);
    ok('secondary', 'remove', arch, usb);
    expect(tidemarkJson<SecondaryStatus[]>('secondary', 'list', arch).map((s) => s.target)).toEqual(
      [path.join(work, 'nas')],
    );
    expect(fs.existsSync(path.join(usb, 'tidemark.json'))).toBe(true);
  }, 240_000);
});

describe('fan-out of a folder (volume) archive', () => {
  it('a secondary away for two points catches up; its trees restore identical', () => {
    const work = tempDir();
    const tree = path.join(work, 'tree');
    fs.mkdirSync(tree);
    fs.writeFileSync(path.join(tree, 'a.txt'), 'first\n');
    fs.writeFileSync(path.join(tree, 'big.bin'), randomFillSync(Buffer.alloc(300_000)));
    const arch = path.join(work, 'arch');
    const usb = path.join(work, 'usb');
    ok('init', tree, arch);
    ok('secondary', 'add', arch, usb);
    const copies = [snapshotOf(tree, work, 0)];
    fs.renameSync(usb, `${usb}.away`);
    fs.writeFileSync(path.join(tree, 'b.txt'), 'second\n');
    expect(statusOf(point(arch, '--no-btrfs-snapshot').secondaries, usb).behind).toBe(1);
    copies.push(snapshotOf(tree, work, 1));
    const fd = fs.openSync(path.join(tree, 'big.bin'), 'r+');
    fs.writeSync(fd, randomFillSync(Buffer.alloc(5000)), 0, 5000, 70_000);
    fs.closeSync(fd);
    expect(statusOf(point(arch, '--no-btrfs-snapshot').secondaries, usb).behind).toBe(2);
    copies.push(snapshotOf(tree, work, 2));
    fs.renameSync(`${usb}.away`, usb);
    ok('flush', arch);
    fs.renameSync(arch, `${arch}.gone`);
    for (let k = 0; k <= 2; k++) {
      const out = path.join(work, `out-${k}`);
      ok('restore', usb, '--state', String(k), '--to', out);
      expect(digest(out), `state ${k}`).toEqual(digest(copies[k]!));
    }
  }, 240_000);
});

/** A copy of the tree as it is now, to compare restores with. */
function snapshotOf(tree: string, work: string, k: number): string {
  const copy = path.join(work, `copy-${k}`);
  fs.cpSync(tree, copy, { recursive: true });
  return copy;
}

function digest(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const rel of fs.readdirSync(root, { recursive: true }) as string[]) {
    const p = path.join(root, rel);
    out[rel] = fs.statSync(p).isDirectory() ? 'dir' : sha256(p);
  }
  return out;
}

describe('fan-out with encryption', () => {
  it('an encrypted and a plain secondary of one archive: no plaintext on the encrypted one', () => {
    const { work, image, arch, usb, sums } = setup();
    const pw = path.join(work, 'pw');
    fs.writeFileSync(pw, 'correct horse\n');
    const vault = path.join(work, 'vault');
    const added = tidemarkJson<SecondaryStatus>(
      'secondary',
      'add',
      arch,
      vault,
      '--encrypt',
      '--passphrase-file',
      pw,
    );
    expect(added.encrypted).toBe(true);
    // A second encrypted one shares the archive id: its machine-local index must stay its own.
    const vault2 = path.join(work, 'vault2');
    ok('secondary', 'add', arch, vault2, '--encrypt', '--passphrase-file', pw);
    const marker = Buffer.from('FANOUT-PLAINTEXT-MARKER-'.repeat(600)).subarray(0, BLOCK);
    write(image, 50, marker);
    // Without the passphrase the encrypted one cannot take it: it falls behind, the rest go on.
    const without = point(arch);
    sums.push(sha256(image));
    expect(statusOf(without.secondaries, usb).shipped).toEqual([1]);
    expect(statusOf(without.secondaries, vault)).toMatchObject({ shipped: [], behind: 1 });
    expect(statusOf(without.secondaries, vault).error).toMatch(/passphrase/);
    scribble(image, 60, 1);
    const withPw = point(arch, '--passphrase-file', pw);
    sums.push(sha256(image));
    expect(statusOf(withPw.secondaries, vault)).toMatchObject({ shipped: [1, 2], behind: 0 });
    const files = fs.readdirSync(vault, { recursive: true }) as string[];
    for (const f of files) {
      const p = path.join(vault, f);
      if (fs.statSync(p).isFile())
        expect(fs.readFileSync(p).includes('FANOUT-PLAINTEXT')).toBe(false);
    }
    expect(
      fs.readFileSync(path.join(usb, 'updates', '0000000001.tmu')).includes('FANOUT-PLAINTEXT'),
    ).toBe(true);
    expect(tidemark('states', vault).code).not.toBe(0);
    ok('prune', vault2, ...DROP_ALL_BUT_PINNED, '--passphrase-file', pw);
    const ids = (a: string) =>
      tidemarkJson<StateInfo[]>('states', a, '--passphrase-file', pw).map((s) => s.id);
    expect(ids(vault2)).toEqual([2]);
    expectAllRestore(vault, sums, work, '--passphrase-file', pw);
    expect(restoredSha(vault2, 2, work, '--passphrase-file', pw)).toBe(sums[2]);
  }, 240_000);
});

const skip = rgwSkipReason();
if (skip) console.warn(`fan-out S3 test skipped: ${skip}`);

describe.skipIf(skip !== null)('fan-out to a bucket (Ceph RGW)', () => {
  let rgw: Rgw;
  beforeAll(() => {
    rgw = startRgw('fanout', 7495, 3395);
    Object.assign(process.env, {
      AWS_ACCESS_KEY_ID: rgw.accessKeyId,
      AWS_SECRET_ACCESS_KEY: rgw.secretAccessKey,
      AWS_ENDPOINT_URL: rgw.endpoint,
      AWS_REGION: rgw.region,
    });
  }, 120_000);
  afterAll(() => {
    for (const k of [
      'AWS_ACCESS_KEY_ID',
      'AWS_SECRET_ACCESS_KEY',
      'AWS_ENDPOINT_URL',
      'AWS_REGION',
    ])
      delete process.env[k];
    rgw?.stop();
  });

  it('an encrypted bucket beside a folder: away (gateway down), back, every state restores', () => {
    const { work, image, arch, sums } = setup();
    const pw = path.join(work, 'pw');
    fs.writeFileSync(pw, 'bucket pass\n');
    const bucket = 's3://tidemark-fanout/disk';
    const named = `${bucket}/`;
    const added = tidemarkJson<SecondaryStatus>(
      'secondary',
      'add',
      arch,
      bucket,
      '--passphrase-file',
      pw,
    );
    expect(added).toMatchObject({ target: named, encrypted: true, reachable: true });
    scribble(image, 2, 2);
    point(arch, '--passphrase-file', pw);
    sums.push(sha256(image));
    rgw.killGateway();
    try {
      for (let k = 2; k <= 3; k++) {
        scribble(image, 9 * k, 2);
        const r = spawnSync(
          process.execPath,
          [CLI, 'snapshot', arch, '--json', '--passphrase-file', pw],
          {
            encoding: 'utf8',
            env: { ...process.env, TIDEMARK_S3_MAX_ATTEMPTS: '1' },
          },
        );
        expect(r.status, r.stderr).toBe(0);
        const out = JSON.parse(r.stdout) as SnapshotJson;
        sums.push(sha256(image));
        expect(statusOf(out.secondaries, named)).toMatchObject({
          reachable: false,
          behind: k - 1,
        });
      }
    } finally {
      rgw.startGateway();
    }
    const flushed = JSON.parse(ok('flush', arch, '--json', '--passphrase-file', pw)) as {
      secondaries: SecondaryStatus[];
    };
    expect(statusOf(flushed.secondaries, named)).toMatchObject({ shipped: [2, 3], behind: 0 });
    fs.rmSync(process.env.TIDEMARK_STATE_DIR!, { recursive: true, force: true });
    expectAllRestore(bucket, sums, work, '--passphrase-file', pw);
  }, 240_000);
});
