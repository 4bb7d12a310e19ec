/**
 * The local update cache: while the secondary is away (its folder vanished, its disk unmounted),
 * snapshots go to a bounded cache on the primary side; when it is back they are shipped in order,
 * each state with its own time, and every state restores identical. Also: collapse when the cache
 * is full (reported), kill -9 while shipping, and `states --json` locations.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { SpaceGuardReport } from '../../src/shared/retention.js';
import type { StateInfo } from '../../src/shared/states.js';
import { Archive } from '../../src/main/engine/archive.js';
import { storeMinFree } from '../../src/main/engine/retention/space-guard.js';
import { CLI, tidemark, tidemarkJson } from '../helpers/cli.js';
import { rootSkipReason, sh } from '../helpers/root.js';
import { sha256, tempDir } from '../helpers/tmp.js';
import { treeDigest } from '../helpers/tree.js';

type Located = StateInfo & { location: 'secondary' | 'cache' | 'both' };
interface SnapshotJson {
  location: 'secondary' | 'cache';
  changed: boolean;
  state?: StateInfo;
  shipped: number[];
  unavailable?: string;
  collapsed: Array<{ from: number; to: number; removedStates: number[] }>;
  cache: { pending: number; bytes: number; limitBytes: number; overheadBytes: number };
}

const BLOCK = 16384;

beforeEach(() => {
  process.env.TIDEMARK_DATA_DIR = tempDir('tidemark-data-');
});
afterEach(() => {
  delete process.env.TIDEMARK_DATA_DIR;
  delete process.env.TIDEMARK_CRASH_AT;
});

/** Overwrites `count` blocks at block `at` of the image with fresh random content. */
function scribble(image: string, at: number, count: number): void {
  const fd = fs.openSync(image, 'r+');
  const data = Buffer.alloc(count * BLOCK);
  for (let i = 0; i < data.length; i += 4) data.writeUInt32LE((Math.random() * 2 ** 32) >>> 0, i);
  fs.writeSync(fd, data, 0, data.length, at * BLOCK);
  fs.closeSync(fd);
}

function snapshot(arch: string, ...flags: string[]): SnapshotJson {
  return tidemarkJson<SnapshotJson>('snapshot', arch, ...flags);
}

/** A device archive of a 2 MiB image with state 0 on the secondary and the cache switched on. */
function deviceSetup(limit = '50M') {
  const work = tempDir();
  const image = path.join(work, 'disk.img');
  const arch = path.join(work, 'arch');
  const cache = path.join(work, 'cache');
  scribble((fs.writeFileSync(image, Buffer.alloc(2 << 20)), image), 0, 128);
  expect(tidemark('init', image, arch, '--block-size', String(BLOCK)).code).toBe(0);
  const sums = [sha256(image)];
  scribble(image, 100, 2);
  const first = snapshot(arch, '--cache-dir', cache, '--cache-limit', limit);
  expect(first.location).toBe('secondary');
  expect(first.state?.id).toBe(1);
  sums.push(sha256(image));
  return { work, image, arch, cache, sums };
}

function restoredSha(arch: string, state: number, work: string): string {
  const target = path.join(work, `restore-${state}-${Math.random().toString(36).slice(2)}.img`);
  const r = tidemark('restore', arch, '--state', String(state), '--to', target);
  expect(r.code, r.stderr).toBe(0);
  const sum = sha256(target);
  fs.rmSync(target);
  return sum;
}

function expectAllStatesBack(arch: string, times: Map<number, string>, count: number): void {
  const states = tidemarkJson<Located[]>('states', arch);
  expect(states.map((s) => s.id)).toEqual([...Array(count).keys()]);
  expect(states.every((s) => s.location === 'secondary')).toBe(true);
  for (const [id, time] of times) expect(states[id]?.time).toBe(time);
  for (let i = 1; i < states.length; i++)
    expect(Date.parse(states[i]!.time)).toBeGreaterThan(Date.parse(states[i - 1]!.time));
}

describe('local update cache (device)', () => {
  it('caches intervals while the archive folder is gone, ships them in order, all restore', () => {
    const { work, image, arch, sums } = deviceSetup();
    const times = new Map<number, string>();
    fs.renameSync(arch, `${arch}.away`);
    for (let k = 2; k <= 4; k++) {
      scribble(image, 10 * k, 3);
      const r = snapshot(arch);
      expect(r.location).toBe('cache');
      expect(r.unavailable).toMatch(/is gone/);
      expect(r.state?.id).toBe(k);
      times.set(k, r.state!.time);
      sums[k] = sha256(image);
    }
    // The vanished folder was never recreated.
    expect(fs.existsSync(arch)).toBe(false);
    const away = tidemarkJson<Located[]>('states', arch);
    expect(away.map((s) => [s.id, s.location])).toEqual([
      [0, 'secondary'],
      [1, 'secondary'],
      [2, 'cache'],
      [3, 'cache'],
      [4, 'cache'],
    ]);
    // The newest cached state restores without the secondary: its changed blocks from the
    // cache, the others from the primary where their content is still the state's.
    expect(restoredSha(arch, 4, work)).toBe(sums[4]);
    // State 2 needs the old content of blocks 30..32, rewritten since and held by the secondary
    // only: a clear error that names the block, nothing left behind.
    const target = path.join(work, 'x.img');
    const missing = tidemark('restore', arch, '--state', '2', '--to', target);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(
      /^tidemark: state 2 is cached, but needs blocks that only the secondary holds .*block 3[012], content [0-9a-f]{64}/,
    );
    expect(fs.existsSync(target)).toBe(false);

    fs.renameSync(`${arch}.away`, arch);
    scribble(image, 90, 2);
    const back = snapshot(arch);
    expect(back.shipped).toEqual([2, 3, 4]);
    expect(back.location).toBe('secondary');
    expect(back.state?.id).toBe(5);
    expect(back.cache.pending).toBe(0);
    sums[5] = sha256(image);
    expectAllStatesBack(arch, times, 6);
    for (let k = 1; k <= 5; k++) expect(restoredSha(arch, k, work), `state ${k}`).toBe(sums[k]);
    const verify = tidemark('verify', arch, '--deep');
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);
  });

  it('restores a cached state without the secondary when the cache holds all its blocks', () => {
    const { work, image, arch } = deviceSetup();
    fs.renameSync(arch, `${arch}.away`);
    scribble(image, 0, 128);
    expect(snapshot(arch).location).toBe('cache');
    const want = sha256(image);
    expect(restoredSha(arch, 2, work)).toBe(want);
  });

  it('an empty mount point or a foreign archive: never written; the first is "away", the second an error', () => {
    const { work, image, arch } = deviceSetup();
    fs.renameSync(arch, `${arch}.away`);
    fs.mkdirSync(arch);
    scribble(image, 5, 1);
    const r = snapshot(arch);
    expect(r.location).toBe('cache');
    expect(r.unavailable).toMatch(/no tidemark.json: its disk is not mounted/);
    expect(fs.readdirSync(arch)).toEqual([]);
    fs.rmdirSync(arch);
    // Another archive at the same place while updates wait: refused, both left as they are.
    const other = path.join(work, 'other.img');
    fs.writeFileSync(other, Buffer.alloc(1 << 20, 1));
    expect(tidemark('init', other, arch).code).toBe(0);
    const before = fs.readdirSync(path.join(arch, 'updates'));
    const foreign = tidemark('snapshot', arch);
    expect(foreign.code).toBe(1);
    expect(foreign.stderr).toMatch(/^tidemark: .* holds another archive .*attach the right disk/);
    expect(fs.readdirSync(path.join(arch, 'updates'))).toEqual(before);
    const states = tidemark('states', arch, '--json');
    expect(states.code).toBe(1);
    expect(states.stderr).toMatch(/holds another archive/);
  });

  it('collapses consecutive cached updates when the cache is full, and says so', () => {
    // Each interval rewrites the same 12 blocks (~200 KB); 450 KB hold two updates, not three.
    const { work, image, arch, sums } = deviceSetup('450K');
    fs.renameSync(arch, `${arch}.away`);
    const results: SnapshotJson[] = [];
    for (let k = 2; k <= 5; k++) {
      scribble(image, 20, 12);
      const r = tidemark('snapshot', arch, '--json');
      expect(r.code, r.stderr).toBe(0);
      results.push(JSON.parse(r.stdout) as SnapshotJson);
      if ((JSON.parse(r.stdout) as SnapshotJson).collapsed.length > 0)
        expect(r.stderr).toMatch(/the local cache is full: states [\d, ]+ were collapsed/);
      sums[k] = sha256(image);
    }
    const removed = results.flatMap((r) => r.collapsed.flatMap((c) => c.removedStates));
    expect(removed.length).toBeGreaterThan(0);
    expect(removed).not.toContain(5);
    const last = results.at(-1)!;
    expect(last.cache.bytes).toBeLessThanOrEqual(last.cache.limitBytes);
    const away = tidemarkJson<Located[]>('states', arch);
    const kept = away.filter((s) => s.location === 'cache').map((s) => s.id);
    expect(kept).toContain(5);
    for (const id of removed) expect(kept).not.toContain(id);

    fs.renameSync(`${arch}.away`, arch);
    const flushed = tidemarkJson<{ shipped: number[] }>('flush', arch);
    expect(flushed.shipped).toEqual(kept);
    const states = tidemarkJson<Located[]>('states', arch);
    expect(states.map((s) => s.id)).toEqual([0, 1, ...kept]);
    for (const id of kept) expect(restoredSha(arch, id, work), `state ${id}`).toBe(sums[id]);
  });

  it('kill -9 while shipping loses nothing and ships nothing twice', () => {
    const { work, image, arch, sums } = deviceSetup();
    fs.renameSync(arch, `${arch}.away`);
    for (let k = 2; k <= 5; k++) {
      scribble(image, 7 * k, 2);
      expect(snapshot(arch).location).toBe('cache');
      sums[k] = sha256(image);
    }
    fs.renameSync(`${arch}.away`, arch);
    // Killed right after update 3 is committed (not yet in the catalog), then right after update 4
    // is recorded (its cache copy not yet released), then after all were shipped.
    for (const point of ['ship-committed:3', 'ship-recorded:4', 'ship-done']) {
      process.env.TIDEMARK_CRASH_AT = point;
      const r = tidemark('flush', arch);
      expect(r.code, `${point}: ${r.stderr}`).toBe(-1);
    }
    delete process.env.TIDEMARK_CRASH_AT;
    const again = tidemarkJson<{ shipped: number[] }>('flush', arch);
    expect(again.shipped).toEqual([2, 3, 4, 5]);
    const names = fs.readdirSync(path.join(arch, 'updates')).filter((n) => n.endsWith('.tmu'));
    expect(names).toHaveLength(6);
    expect(tidemarkJson<{ shipped: number[] }>('flush', arch).shipped).toEqual([]);
    expectAllStatesBack(arch, new Map(), 6);
    for (let k = 1; k <= 5; k++) expect(restoredSha(arch, k, work), `state ${k}`).toBe(sums[k]);
  });
});

describe('local update cache (volume)', () => {
  it('caches points while the archive is away; a changed file restores from the cache; all ship', () => {
    const work = tempDir();
    const tree = path.join(work, 'tree');
    const arch = path.join(work, 'arch');
    const cache = path.join(work, 'cache');
    fs.mkdirSync(path.join(tree, 'docs'), { recursive: true });
    fs.writeFileSync(path.join(tree, 'docs', 'a.txt'), 'first');
    fs.writeFileSync(path.join(tree, 'big.bin'), Buffer.alloc(300_000, 9));
    // Unchanged while the archive is away: its blocks are on the secondary only.
    fs.writeFileSync(path.join(tree, 'keep.bin'), randomBytes(200_000));
    // Big, and changed a little while away: the cache stores the changed blocks, not the file.
    fs.writeFileSync(path.join(tree, 'vm.img'), randomBytes(8 << 20));
    expect(tidemark('init', tree, arch).code).toBe(0);
    const digests = [treeDigest(tree)];
    expect(snapshot(arch, '--cache-dir', cache).changed).toBe(false);
    fs.renameSync(arch, `${arch}.away`);
    const times = new Map<number, string>();
    for (let k = 1; k <= 3; k++) {
      fs.writeFileSync(path.join(tree, 'docs', 'a.txt'), `version ${k}`);
      fs.writeFileSync(path.join(tree, `new-${k}.txt`), `added in ${k}`.repeat(k * 100));
      if (k === 2) fs.rmSync(path.join(tree, 'big.bin'));
      const vm = fs.openSync(path.join(tree, 'vm.img'), 'r+');
      fs.writeSync(vm, randomBytes(5000), 0, 5000, k * 1_000_000);
      fs.closeSync(vm);
      const r = snapshot(arch);
      expect(r.location).toBe('cache');
      expect(r.state?.storedBytes, `state ${k}`).toBeLessThan(1 << 20);
      // The anchor (the secondary's last state: every entry) is reported, outside the limit.
      expect(r.cache.overheadBytes).toBeGreaterThan(0);
      expect(r.cache.bytes).toBeGreaterThan(0);
      expect(r.state?.id).toBe(k);
      times.set(k, r.state!.time);
      digests.push(treeDigest(tree));
    }
    const away = tidemarkJson<Located[]>('states', arch);
    expect(away.map((s) => s.location)).toEqual(['secondary', 'cache', 'cache', 'cache']);
    // One file of a cached state, restored without the secondary.
    const one = path.join(work, 'one');
    const r = tidemark('restore', arch, '--state', '2', '--to', one, '--path', 'docs/a.txt');
    expect(r.code, r.stderr).toBe(0);
    expect(fs.readFileSync(one, 'utf8')).toBe('version 2');
    // A whole cached state: the unchanged file's blocks come from the live folder, checked.
    const whole = path.join(work, 'whole');
    const w = tidemark('restore', arch, '--state', '3', '--to', whole);
    expect(w.code, w.stderr).toBe(0);
    expect(treeDigest(whole)).toEqual(digests[3]);
    // State 1 had big.bin, deleted since: found nowhere, said in one line, nothing made.
    const gone = path.join(work, 'gone');
    const g = tidemark('restore', arch, '--state', '1', '--to', gone);
    expect(g.code).not.toBe(0);
    expect(g.stderr).toMatch(/^tidemark: state 1 is cached, but needs blocks .*big\.bin.*\n$/);
    expect(fs.existsSync(gone)).toBe(false);

    fs.renameSync(`${arch}.away`, arch);
    const back = snapshot(arch);
    expect(back.shipped).toEqual([1, 2, 3]);
    expectAllStatesBack(arch, times, 4);
    for (let k = 0; k <= 3; k++) {
      const to = path.join(work, `r${k}`);
      const res = tidemark('restore', arch, '--state', String(k), '--to', to);
      expect(res.code, res.stderr).toBe(0);
      expect(treeDigest(to), `state ${k}`).toEqual(digests[k]);
    }
  });
});

/** Sets the space guard threshold stored in the archive, as an earlier `--min-free` would. */
async function storeThreshold(arch: string, bytes: number): Promise<void> {
  const a = await Archive.open(arch, { write: true });
  try {
    await storeMinFree(a, { bytes });
  } finally {
    await a.close();
  }
}

type Guarded = SnapshotJson & { spaceGuard?: SpaceGuardReport };

// A threshold no disk meets: the guard removes every state it may, so what it reports can be
// compared with what is gone.
const NEVER_MET = 2 ** 50;

describe('space guard with the cache on', () => {
  it('folder mode: every state the guard removed around the point is reported', async () => {
    const work = tempDir();
    const tree = path.join(work, 'tree');
    const arch = path.join(work, 'arch');
    const cache = path.join(work, 'cache');
    fs.mkdirSync(tree);
    fs.writeFileSync(path.join(tree, 'a.txt'), 'first');
    expect(tidemark('init', tree, arch).code).toBe(0);
    for (let k = 1; k <= 2; k++) {
      fs.writeFileSync(path.join(tree, 'a.txt'), `version ${k}`);
      expect(snapshot(arch, '--cache-dir', cache).state?.id).toBe(k);
    }
    await storeThreshold(arch, NEVER_MET);
    fs.writeFileSync(path.join(tree, 'a.txt'), 'version 3');
    const r = tidemark('snapshot', arch, '--json');
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as Guarded;
    expect(out.state?.id).toBe(3);
    expect(tidemarkJson<Located[]>('states', arch).map((s) => s.id)).toEqual([3]);
    expect(out.spaceGuard?.dropped).toEqual([0, 1, 2]);
    expect(out.spaceGuard?.met).toBe(false);
    expect(r.stderr).toMatch(/space guard: .* removed the oldest state\(s\) 0, 1, 2/);
  });

  it('flush: the guard runs around shipping the cached backlog, and it is reported', async () => {
    const { work, image, arch, sums } = deviceSetup();
    fs.renameSync(arch, `${arch}.away`);
    for (let k = 2; k <= 3; k++) {
      scribble(image, 20, 4);
      expect(snapshot(arch).location).toBe('cache');
      sums[k] = sha256(image);
    }
    fs.renameSync(`${arch}.away`, arch);
    await storeThreshold(arch, NEVER_MET);
    const r = tidemark('flush', arch, '--json');
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { shipped: number[]; spaceGuard?: SpaceGuardReport };
    expect(out.shipped).toEqual([2, 3]);
    // State 1 was the newest before shipping; the backlog's states only after it.
    expect(out.spaceGuard?.dropped).toEqual([0, 1, 2]);
    expect(r.stderr).toMatch(/space guard: .* removed the oldest state\(s\) 0, 1, 2/);
    expect(tidemarkJson<Located[]>('states', arch).map((s) => s.id)).toEqual([3]);
    expect(restoredSha(arch, 3, work)).toBe(sums[3]);
  });

  it('--min-free keeps the cache on: cached while the secondary is away, applied when it is back', () => {
    const { work, image, arch, sums } = deviceSetup();
    fs.renameSync(arch, `${arch}.away`);
    scribble(image, 20, 4);
    const away = tidemark('snapshot', arch, '--min-free', '1000T', '--json');
    expect(away.code, away.stderr).toBe(0);
    expect((JSON.parse(away.stdout) as SnapshotJson).location).toBe('cache');
    sums[2] = sha256(image);
    fs.renameSync(`${arch}.away`, arch);
    scribble(image, 40, 4);
    const back = tidemark('snapshot', arch, '--min-free', '1000T', '--json');
    expect(back.code, back.stderr).toBe(0);
    const out = JSON.parse(back.stdout) as Guarded;
    expect(out.location).toBe('secondary');
    expect(out.shipped).toEqual([2]);
    expect(out.state?.id).toBe(3);
    expect(out.spaceGuard?.dropped).toEqual([0, 1, 2]);
    sums[3] = sha256(image);
    expect(restoredSha(arch, 3, work)).toBe(sums[3]);
  });
});

async function waitFor(what: string, ok: () => boolean, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('watch with the cache on', () => {
  it('points go to the cache while the archive is away and are shipped when it is back', async () => {
    const work = tempDir();
    const tree = path.join(work, 'tree');
    const arch = path.join(work, 'arch');
    fs.mkdirSync(tree);
    fs.writeFileSync(path.join(tree, 'a.txt'), 'a');
    expect(tidemark('init', tree, arch).code).toBe(0);
    const args = ['watch', arch, '--every', '300ms', '--cache-dir', path.join(work, 'cache')];
    const child = spawn(process.execPath, [CLI, ...args, '--json'], { env: process.env });
    const points: SnapshotJson[] = [];
    let buffered = '';
    child.stdout.on('data', (d: Buffer) => {
      buffered += d.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      for (const l of lines) if (l.trim()) points.push(JSON.parse(l) as SnapshotJson);
    });
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    try {
      await waitFor('a first point', () => points.length > 0);
      fs.renameSync(arch, `${arch}.away`);
      fs.writeFileSync(path.join(tree, 'b.txt'), 'written while away');
      await waitFor('a cached point', () =>
        points.some((p) => p.location === 'cache' && p.changed),
      );
      fs.renameSync(`${arch}.away`, arch);
      await waitFor('the shipping', () => points.some((p) => p.shipped.length > 0));
    } finally {
      child.kill('SIGINT');
    }
    expect(await exited).toBe(0);
    const states = tidemarkJson<Located[]>('states', arch);
    expect(states.every((s) => s.location === 'secondary')).toBe(true);
    const to = path.join(work, 'restored');
    const r = tidemark('restore', arch, '--state', String(states.at(-1)!.id), '--to', to);
    expect(r.code, r.stderr).toBe(0);
    expect(treeDigest(to)).toEqual(treeDigest(tree));
  });
});

const skip = rootSkipReason();

describe.skipIf(skip)(
  `secondary on a real unmounted disk${skip ? ` (skipped: ${skip})` : ''}`,
  () => {
    const mounted: string[] = [];
    const attached: string[] = [];
    afterEach(() => {
      for (const m of mounted.splice(0).reverse()) sh('umount', [m]);
      for (const d of attached.splice(0)) sh('losetup', ['-d', d]);
    });

    /** A fresh 64 MiB ext4 on a loop device, mounted at `<work>/mnt`; undone after the test. */
    const ext4Disk = (work: string, mkfsFlags: string[] = []): { dev: string; mnt: string } => {
      const disk = path.join(work, 'secondary.img');
      fs.writeFileSync(disk, Buffer.alloc(0));
      fs.truncateSync(disk, 64 << 20);
      sh('mkfs.ext4', ['-q', '-F', ...mkfsFlags, disk]);
      const dev = sh('losetup', ['--find', '--show', disk]).trim();
      attached.push(dev);
      const mnt = path.join(work, 'mnt');
      fs.mkdirSync(mnt);
      sh('mount', [dev, mnt]);
      mounted.push(mnt);
      return { dev, mnt };
    };

    it('a cached backlog shipped onto a nearly full secondary: the guard makes room first, the base stays', () => {
      const work = tempDir();
      const { mnt } = ext4Disk(work, ['-m', '0']);
      const cache = path.join(work, 'cache');
      const image = path.join(work, 'disk.img');
      fs.writeFileSync(image, Buffer.alloc(8 << 20));
      scribble(image, 0, 512);
      const arch = path.join(mnt, 'arch');
      expect(tidemark('init', image, arch, '--block-size', String(BLOCK)).code).toBe(0);
      const sums = [sha256(image)];
      // Each interval rewrites the same 2 MiB: a state holds alone what the next one rewrote.
      const interval = (where: 'secondary' | 'cache', ...flags: string[]): void => {
        scribble(image, 0, 128);
        expect(snapshot(arch, ...flags).location).toBe(where);
        sums.push(sha256(image));
      };
      for (let k = 1; k <= 3; k++) interval('secondary', '--cache-dir', cache);
      fs.renameSync(arch, `${arch}.away`);
      for (let k = 4; k <= 5; k++) interval('cache');
      fs.renameSync(`${arch}.away`, arch);
      // Less room than the backlog and than the 8 MiB base: shipping first would run out of space.
      const st = fs.statfsSync(mnt);
      const fd = fs.openSync(path.join(mnt, 'filler'), 'w');
      const chunk = Buffer.alloc(1 << 20);
      for (let left = st.bavail * st.bsize - 3.5 * (1 << 20); left > 0; left -= chunk.length)
        fs.writeSync(fd, chunk, 0, Math.min(chunk.length, left));
      fs.fsyncSync(fd);
      fs.closeSync(fd);
      scribble(image, 0, 128);
      const r = tidemark('snapshot', arch, '--min-free', '8M', '--json');
      expect(r.code, r.stderr).toBe(0);
      sums.push(sha256(image));
      const out = JSON.parse(r.stdout) as Guarded;
      expect(out.shipped).toEqual([4, 5]);
      expect(out.state?.id).toBe(6);
      expect(out.spaceGuard?.dropped.slice(0, 2)).toEqual([1, 2]);
      expect(out.spaceGuard?.notes?.[0]).toMatch(/^state 0 was kept: integrating it into the base/);
      expect(r.stderr).toMatch(/space guard: .* removed the oldest state\(s\) 1, 2/);
      const left = tidemarkJson<Located[]>('states', arch).map((s) => s.id);
      expect(left[0]).toBe(0);
      expect(left.at(-1)).toBe(6);
      expect([...(out.spaceGuard?.dropped ?? []), ...left].sort((a, b) => a - b)).toEqual([
        0, 1, 2, 3, 4, 5, 6,
      ]);
      for (const id of left) expect(restoredSha(arch, id, work), `state ${id}`).toBe(sums[id]);
    });

    it('an ext4 loop disk unmounted for several intervals: device and volume states all come back', () => {
      const work = tempDir();
      const { dev, mnt } = ext4Disk(work);
      const mount = (): void => {
        sh('mount', [dev, mnt]);
        mounted.push(mnt);
      };
      const unmount = (): void => {
        sh('umount', [mnt]);
        mounted.splice(mounted.indexOf(mnt), 1);
      };
      const cache = path.join(work, 'cache');
      const image = path.join(work, 'disk.img');
      fs.writeFileSync(image, Buffer.alloc(2 << 20));
      scribble(image, 0, 128);
      const tree = path.join(work, 'tree');
      fs.mkdirSync(tree);
      fs.writeFileSync(path.join(tree, 'f.txt'), 'zero');
      const devArch = path.join(mnt, 'device-archive');
      const volArch = path.join(mnt, 'volume-archive');
      expect(tidemark('init', image, devArch, '--block-size', String(BLOCK)).code).toBe(0);
      expect(tidemark('init', tree, volArch).code).toBe(0);
      const sums = [sha256(image)];
      const digests = [treeDigest(tree)];
      const change = (k: number): void => {
        scribble(image, 11 * k, 4);
        fs.writeFileSync(path.join(tree, 'f.txt'), `content ${k}`);
        fs.writeFileSync(path.join(tree, `g${k}.bin`), Buffer.alloc(70_000, k));
      };
      const times = { dev: new Map<number, string>(), vol: new Map<number, string>() };
      const round = (k: number, where: 'secondary' | 'cache'): void => {
        change(k);
        const d = snapshot(devArch, '--cache-dir', cache);
        const v = snapshot(volArch, '--cache-dir', cache);
        expect([d.location, v.location]).toEqual([where, where]);
        if (where === 'cache') expect(d.unavailable).toMatch(/is gone \(disk unplugged\?\)/);
        times.dev.set(k, d.state!.time);
        times.vol.set(k, v.state!.time);
        sums.push(sha256(image));
        digests.push(treeDigest(tree));
      };
      round(1, 'secondary');
      round(2, 'secondary');
      unmount();
      for (let k = 3; k <= 5; k++) round(k, 'cache');
      expect(fs.readdirSync(mnt)).toEqual([]);
      const away = tidemarkJson<Located[]>('states', devArch);
      expect(away.map((s) => s.location)).toEqual([
        'secondary',
        'secondary',
        'secondary',
        'cache',
        'cache',
        'cache',
      ]);
      mount();
      round(6, 'secondary');
      expectAllStatesBack(devArch, times.dev, 7);
      expectAllStatesBack(volArch, times.vol, 7);
      for (let k = 0; k <= 6; k++) {
        expect(restoredSha(devArch, k, work), `device state ${k}`).toBe(sums[k]);
        const to = path.join(work, `v${k}`);
        const r = tidemark('restore', volArch, '--state', String(k), '--to', to);
        expect(r.code, r.stderr).toBe(0);
        expect(treeDigest(to), `volume state ${k}`).toEqual(digests[k]);
      }
    });

    it('a backup disk the kernel turned read-only: points are cached, and shipped once it is writable', () => {
      const work = tempDir();
      const { mnt } = ext4Disk(work);
      const tree = path.join(work, 'tree');
      fs.mkdirSync(tree);
      fs.writeFileSync(path.join(tree, 'f.txt'), 'zero');
      const arch = path.join(mnt, 'archive');
      const cache = path.join(work, 'cache');
      expect(tidemark('init', tree, arch).code).toBe(0);
      expect(snapshot(arch, '--cache-dir', cache).location).toBe('secondary');
      const digests = [treeDigest(tree)];
      // What ext4 does after I/O errors (errors=remount-ro): the mount stays, writes fail EROFS.
      sh('mount', ['-o', 'remount,ro', mnt]);
      for (let k = 1; k <= 2; k++) {
        fs.writeFileSync(path.join(tree, `g${k}.bin`), Buffer.alloc(50_000, k));
        const r = snapshot(arch);
        expect(r.location).toBe('cache');
        expect(r.unavailable).toMatch(/the backup disk is read-only/);
        digests.push(treeDigest(tree));
      }
      sh('mount', ['-o', 'remount,rw', mnt]);
      fs.writeFileSync(path.join(tree, 'f.txt'), 'three');
      const back = snapshot(arch);
      expect(back.shipped).toEqual([1, 2]);
      expect(back.location).toBe('secondary');
      digests.push(treeDigest(tree));
      expect(tidemarkJson<Located[]>('states', arch).map((s) => s.location)).toEqual([
        'secondary',
        'secondary',
        'secondary',
        'secondary',
      ]);
      for (let k = 0; k <= 3; k++) {
        const to = path.join(work, `r${k}`);
        const r = tidemark('restore', arch, '--state', String(k), '--to', to);
        expect(r.code, r.stderr).toBe(0);
        expect(treeDigest(to), `state ${k}`).toEqual(digests[k]);
      }
    });
  },
);
