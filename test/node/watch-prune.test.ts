/**
 * Retention while `tidemark watch` runs: the watch holds the archive, so a separate `prune`
 * could never get in; with --keep-* (or --prune) the watch thins out old states itself after
 * each recorded point. The newest state always stays, every state left restores identical to a
 * copy taken at its point, and `verify --deep` passes. Bad retention flags are refused exactly
 * as `prune` refuses them.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { PruneReport } from '../../src/shared/retention.js';
import type { StateInfo } from '../../src/shared/states.js';
import { CLI, tidemark, tidemarkJson } from '../helpers/cli.js';
import { sha256, tempDir } from '../helpers/tmp.js';
import { KEEP_NEWEST_ONLY } from '../helpers/prune-kill.mjs';
import { treeDigest } from '../helpers/tree.js';
import { sleep, WatchProcess } from '../helpers/watch.js';

beforeEach(() => {
  process.env.TIDEMARK_DATA_DIR = tempDir('tidemark-data-');
});
afterEach(() => {
  delete process.env.TIDEMARK_DATA_DIR;
});

interface PointLine {
  changed: boolean;
  state?: { id: number };
  pruned?: PruneReport;
}

describe('tidemark watch with retention (folder)', () => {
  it('drops old states while it runs; the newest stays; what is left restores identical', async () => {
    const work = tempDir();
    const tree = path.join(work, 'tree');
    const arch = path.join(work, 'arch');
    const copies = path.join(work, 'copies');
    fs.mkdirSync(path.join(tree, 'docs'), { recursive: true });
    fs.writeFileSync(path.join(tree, 'docs', 'a.txt'), 'version 0');
    fs.writeFileSync(path.join(tree, 'big.bin'), Buffer.alloc(300_000, 7));
    expect(tidemark('init', tree, arch, '--no-btrfs-snapshot').code).toBe(0);
    fs.cpSync(tree, path.join(copies, '0'), { recursive: true });
    const w = new WatchProcess(arch, '300ms', ['--no-btrfs-snapshot', ...KEEP_NEWEST_ONLY]);
    const lines = (): PointLine[] => w.lines as unknown as PointLine[];
    try {
      for (let k = 1; k <= 5; k++) {
        // Each state is more than a second old when the next point is recorded.
        await sleep(1200);
        fs.writeFileSync(path.join(tree, 'docs', 'a.txt'), `version ${k}`);
        const big = fs.openSync(path.join(tree, 'big.bin'), 'r+');
        fs.writeSync(big, Buffer.alloc(1000, k), 0, 1000, k * 50_000);
        fs.closeSync(big);
        if (k === 3) fs.writeFileSync(path.join(tree, `new-${k}.txt`), `added at ${k}`);
        if (k === 4) fs.rmSync(path.join(tree, 'new-3.txt'));
        const line = await w.waitFor((l) => (l as { state?: { id: number } }).state?.id === k);
        expect(line.changed).toBe(true);
        fs.cpSync(tree, path.join(copies, String(k)), { recursive: true });
      }
      // A point with no change prunes nothing and says nothing of retention.
      const idle = lines().filter((l) => !l.changed);
      expect(idle.every((l) => l.pruned === undefined)).toBe(true);
    } finally {
      expect((await w.stop('SIGTERM')).code).toBe(0);
    }
    expect(w.stderr).toBe('');
    const pruned = lines().flatMap((l) => (l.pruned ? [l.pruned] : []));
    expect(pruned.length).toBeGreaterThanOrEqual(3);
    for (const p of pruned) {
      expect(p.dryRun).toBe(false);
      expect(p.dropped).toBeGreaterThan(0);
      expect(p.settings).toMatchObject({ keepWithinMs: 1000, hourly: 0, daily: 0, weekly: 0 });
      // The state just recorded is the newest one, kept as such.
      expect(p.states.at(-1)).toMatchObject({ keep: true, reason: 'newest' });
    }
    const dropped = pruned.flatMap((p) => p.states.filter((s) => !s.keep).map((s) => s.id));
    expect(dropped).toContain(0);
    expect(dropped).not.toContain(5);

    const left = tidemarkJson<StateInfo[]>('states', arch).map((s) => s.id);
    expect(left.at(-1)).toBe(5);
    for (const id of dropped) expect(left).not.toContain(id);
    for (const id of left) {
      const to = path.join(work, `restored-${id}`);
      const r = tidemark('restore', arch, '--state', String(id), '--to', to);
      expect(r.code, r.stderr).toBe(0);
      expect(treeDigest(to), `state ${id}`).toEqual(treeDigest(path.join(copies, String(id))));
    }
    const verify = tidemark('verify', arch, '--deep');
    expect(verify.code, verify.stderr).toBe(0);
    expect(verify.stdout).toMatch(/^ok: /);
  }, 90_000);

  it('--prune alone applies the default policy: nothing of today goes', async () => {
    const work = tempDir();
    const tree = path.join(work, 'tree');
    const arch = path.join(work, 'arch');
    fs.mkdirSync(tree);
    fs.writeFileSync(path.join(tree, 'a.txt'), 'a');
    expect(tidemark('init', tree, arch, '--no-btrfs-snapshot').code).toBe(0);
    const w = new WatchProcess(arch, '300ms', ['--no-btrfs-snapshot', '--prune']);
    try {
      fs.writeFileSync(path.join(tree, 'a.txt'), 'b');
      await w.waitFor((l) => (l as { state?: { id: number } }).state?.id === 1);
    } finally {
      await w.stop('SIGTERM');
    }
    expect(w.lines.every((l) => l.pruned === undefined)).toBe(true);
    expect(tidemarkJson<StateInfo[]>('states', arch).map((s) => s.id)).toEqual([0, 1]);
  }, 60_000);

  it('refuses bad retention flags with the line and exit code of prune, writing nothing', () => {
    const work = tempDir();
    const tree = path.join(work, 'tree');
    const arch = path.join(work, 'arch');
    fs.mkdirSync(tree);
    fs.writeFileSync(path.join(tree, 'a.txt'), 'a');
    expect(tidemark('init', tree, arch, '--no-btrfs-snapshot').code).toBe(0);
    const before = fs.readdirSync(path.join(arch, 'updates')).sort();
    const bad = [
      ['--keep-hourly', '-3'],
      ['--keep-daily', 'many'],
      ['--keep-weekly', '1.5'],
      ['--keep-within', '5'],
      ['--time-zone', 'Mars/Base'],
    ];
    const cacheDir = path.join(work, 'cache');
    for (const flags of bad) {
      const prune = tidemark('prune', arch, ...flags);
      expect(prune.code, flags.join(' ')).toBe(2);
      expect(prune.stderr.split('\n')).toHaveLength(2);
      for (const extra of [[], ['--cache-dir', cacheDir]]) {
        const watch = tidemark('watch', arch, '--every', '1s', ...extra, ...flags);
        expect(watch.code, flags.join(' ')).toBe(2);
        expect(watch.stderr, flags.join(' ')).toBe(prune.stderr);
      }
    }
    expect(tidemark('watch', arch, '--every', '1s', '--prune=yes').code).toBe(2);
    expect(fs.readdirSync(path.join(arch, 'updates')).sort()).toEqual(before);
    // The cache was not switched on by a refused command line.
    expect(fs.existsSync(path.join(process.env.TIDEMARK_DATA_DIR!, 'cache-settings.json'))).toBe(
      false,
    );
  }, 60_000);
});

const BLOCK = 16384;

/** Overwrites `count` blocks at block `at` of the image with fresh random content. */
function scribble(image: string, at: number, count: number): void {
  const fd = fs.openSync(image, 'r+');
  const data = Buffer.alloc(count * BLOCK);
  for (let i = 0; i < data.length; i += 4) data.writeUInt32LE((Math.random() * 2 ** 32) >>> 0, i);
  fs.writeSync(fd, data, 0, data.length, at * BLOCK);
  fs.closeSync(fd);
}

describe('tidemark watch with the cache on and retention (device image)', () => {
  it('prunes after points on the secondary, never after a point kept in the cache', async () => {
    const work = tempDir();
    const image = path.join(work, 'disk.img');
    const arch = path.join(work, 'arch');
    const cache = path.join(work, 'cache');
    fs.writeFileSync(image, Buffer.alloc(2 << 20));
    scribble(image, 0, 64);
    expect(tidemark('init', image, arch, '--block-size', String(BLOCK)).code).toBe(0);
    const sums = new Map<number, string>([[0, sha256(image)]]);
    const child = spawn(
      process.execPath,
      [CLI, 'watch', arch, '--every', '300ms', '--cache-dir', cache, ...KEEP_NEWEST_ONLY],
      { env: process.env },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    const waitForLine = async (re: RegExp): Promise<RegExpMatchArray> => {
      const end = Date.now() + 30_000;
      for (;;) {
        const m = re.exec(stdout);
        if (m) return m;
        if (Date.now() > end) throw new Error(`no ${re} in ${stdout}; stderr ${stderr}`);
        await sleep(50);
      }
    };
    try {
      for (let k = 1; k <= 3; k++) {
        await sleep(1200);
        scribble(image, k * 10, 4);
        await waitForLine(new RegExp(`^state ${k} .* on the secondary$`, 'm'));
        sums.set(k, sha256(image));
      }
      // The secondary goes away: the point is cached, and nothing is pruned after it.
      fs.renameSync(arch, `${arch}.away`);
      await sleep(1200);
      scribble(image, 50, 4);
      await waitForLine(/^state 4 .* in the local cache$/m);
      sums.set(4, sha256(image));
      await sleep(1200);
      fs.renameSync(`${arch}.away`, arch);
      // Written only once a point has reached the secondary again (else it may be cached too).
      await waitForLine(/^shipped 1 cached update\(s\) to the secondary: states 4$/m);
      scribble(image, 60, 4);
      await waitForLine(/^state 5 .* on the secondary$/m);
      sums.set(5, sha256(image));
      // The line after a point that dropped states.
      await waitForLine(/^state 5 .*\n(?:.*\n)*?pruned \d+ states? \([\d, ]+\): .* freed$/m);
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
    expect(stderr).toBe('');
    // The cached point's own lines: no retention between it and the next point.
    const cachedPart = stdout.slice(
      stdout.indexOf('in the local cache'),
      stdout.search(/^state 5 /m),
    );
    expect(cachedPart).not.toMatch(/^pruned /m);
    const prunedLines = stdout.match(/^pruned .*$/gm) ?? [];
    expect(prunedLines.length).toBeGreaterThanOrEqual(3);

    const left = tidemarkJson<Array<StateInfo & { location: string }>>('states', arch);
    expect(left.at(-1)?.id).toBe(5);
    expect(left.every((s) => s.location === 'secondary')).toBe(true);
    expect(left.map((s) => s.id)).not.toContain(0);
    for (const s of left) {
      const to = path.join(work, `restored-${s.id}.img`);
      const r = tidemark('restore', arch, '--state', String(s.id), '--to', to);
      expect(r.code, r.stderr).toBe(0);
      expect(sha256(to), `state ${s.id}`).toBe(sums.get(s.id));
    }
    const verify = tidemark('verify', arch, '--deep');
    expect(verify.code, verify.stderr).toBe(0);
  }, 120_000);
});
