import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { PruneReport } from '../../src/shared/retention.js';
import type { StateInfo } from '../../src/shared/states.js';
import { tidemark, tidemarkJson } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';

// prune, pin and unpin through the real CLI: what goes and why, dry runs change nothing, pins
// survive a catalog rebuild, bad input gets one clear line and a non-zero exit.

describe('tidemark prune / pin / unpin', () => {
  it('says what goes and why, keeps pins across a catalog rebuild, refuses bad input', () => {
    const dir = tempDir();
    const image = path.join(dir, 'disk.img');
    const arch = path.join(dir, 'arch');
    fs.writeFileSync(image, randomBytes(2 << 20));
    tidemarkJson('init', image, arch);
    for (let k = 0; k < 3; k++) {
      const fd = fs.openSync(image, 'r+');
      fs.writeSync(fd, randomBytes(100_000), 0, 100_000, k * 300_000);
      fs.closeSync(fd);
      tidemarkJson('snapshot', arch);
    }
    expect(tidemark('pin', arch, '1').stdout).toBe('state 1 pinned\n');
    expect(tidemark('pin', arch, '1').stdout).toBe('state 1 pinned (it already was)\n');
    // Pins are objects of their own: a rebuilt catalog does not lose them.
    fs.rmSync(path.join(arch, 'catalog.sqlite'));
    expect(tidemark('catalog', 'rebuild', arch).code).toBe(0);
    const states = tidemarkJson<StateInfo[]>('states', arch);
    expect(states.map((s) => [s.id, s.pinned])).toEqual([
      [0, false],
      [1, true],
      [2, false],
      [3, false],
    ]);

    const far = ['--now', '2031-01-01T00:00:00Z', '--keep-weekly', '0'];
    const before = fs.readdirSync(path.join(arch, 'updates')).sort();
    const dry = tidemarkJson<PruneReport>('prune', arch, '--dry-run', ...far);
    expect(dry.dryRun).toBe(true);
    expect(dry.states.map((s) => [s.id, s.keep, s.reason])).toEqual([
      [0, false, 'beyond daily'],
      [1, true, 'pinned'],
      [2, false, 'beyond daily'],
      [3, true, 'newest'],
    ]);
    expect(dry.runs).toEqual([]);
    // Buckets follow the machine's zone unless told; --time-zone names another.
    expect(dry.settings.timeZone).toBe(Intl.DateTimeFormat().resolvedOptions().timeZone);
    const tokyo = tidemarkJson<PruneReport>(
      'prune',
      arch,
      '--dry-run',
      '--time-zone',
      'asia/tokyo',
    );
    expect(tokyo.settings.timeZone).toBe('Asia/Tokyo');
    expect(fs.readdirSync(path.join(arch, 'updates')).sort()).toEqual(before);
    // As of now, everything is within 24 h: nothing goes.
    const now = tidemarkJson<PruneReport>('prune', arch);
    expect(now.dropped).toBe(0);
    expect(now.states.filter((s) => s.reason === 'within 24 h').map((s) => s.id)).toEqual([0, 2]);

    const human = tidemark('prune', arch, ...far);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/drop {2}state 0 .* beyond daily/);
    expect(human.stdout).toMatch(/dropped 2 of 4 states in 2 collapse\(s\)/);
    expect(tidemarkJson<StateInfo[]>('states', arch).map((s) => s.id)).toEqual([1, 3]);
    expect(tidemark('unpin', arch, '1').stdout).toBe('state 1 unpinned\n');
    const last = tidemarkJson<PruneReport>('prune', arch, ...far);
    expect(last.runs).toEqual([
      { states: [1, 3], into: 3, parent: null, update: 'updates/0000000003-0000000000.tmu' },
    ]);
    expect(last.bytesFreed).toBeGreaterThan(0);

    const bad: Array<[string[], RegExp, number]> = [
      [['pin', arch, '7'], /^tidemark: state 7 does not exist in this archive\n$/, 1],
      [['pin', arch, 'x'], /^tidemark: a state is a whole number, got x\n$/, 2],
      [['prune', arch, '--now', 'yesterday'], /^tidemark: --now needs an ISO 8601 time/, 2],
      [['prune', arch, '--keep-hourly', '-3'], /^tidemark: /, 2],
      [['prune', arch, '--keep-daily', 'many'], /^tidemark: --keep-daily needs a whole number/, 2],
      [['prune', arch, '--keep-within', '5'], /^tidemark: --keep-within needs a duration/, 2],
      [['prune', arch, '--time-zone', 'Mars/Base'], /^tidemark: --time-zone needs an IANA/, 2],
      [['prune', path.join(dir, 'nowhere')], /^tidemark: no archive at /, 1],
      [['snapshot', arch, '--min-free', 'lots'], /^tidemark: --min-free needs a size/, 2],
    ];
    for (const [args, message, code] of bad) {
      const r = tidemark(...args);
      expect(r.stderr, args.join(' ')).toMatch(message);
      expect(r.code, args.join(' ')).toBe(code);
    }
  }, 120_000);
});
