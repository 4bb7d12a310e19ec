import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import type { SpaceGuardReport } from '../../src/shared/retention.js';
import type { StateInfo } from '../../src/shared/states.js';
import {
  initArchive,
  listStates,
  restoreArchive,
  snapshotArchive,
} from '../../src/main/engine/device-engine.js';
import { parseMinFree } from '../../src/main/engine/retention/space-guard.js';
import { tidemark } from '../helpers/cli.js';
import { rootSkipReason, sh } from '../helpers/root.js';
import { sha256, tempDir } from '../helpers/tmp.js';

// The space guard on a real, small ext4 filesystem (a loop device): as the archive fills it, the
// oldest states go first, never the newest, every state left restores, and it is reported.

const MIB = 1 << 20;
const skip = rootSkipReason();
const mounted: string[] = [];
const attached: string[] = [];

afterEach(() => {
  for (const m of mounted.splice(0).reverse()) sh('umount', [m]);
  for (const dev of attached.splice(0)) sh('losetup', ['-d', dev]);
});

describe('space guard threshold', () => {
  it('parses sizes and percentages, refuses the rest', () => {
    expect(parseMinFree('10%')).toEqual({ percent: 10 });
    expect(parseMinFree('500M')).toEqual({ bytes: 500 * MIB });
    expect(parseMinFree('2GiB')).toEqual({ bytes: 2 * 1024 * MIB });
    expect(parseMinFree('4096')).toEqual({ bytes: 4096 });
    for (const bad of ['100%', 'lots', '-5M', '5X'])
      expect(() => parseMinFree(bad), bad).toThrow(/--min-free needs/);
  });
});

describe.skipIf(skip)(`space guard on a small ext4${skip ? ` (skipped: ${skip})` : ''}`, () => {
  it('drops the oldest states when free space falls below --min-free, never the newest', async () => {
    const dir = tempDir();
    const fsImage = path.join(dir, 'ext4.img');
    fs.writeFileSync(fsImage, Buffer.alloc(0));
    fs.truncateSync(fsImage, 64 * MIB);
    const dev = sh('losetup', ['--find', '--show', fsImage]).trim();
    attached.push(dev);
    sh('mkfs.ext4', ['-q', '-m', '0', dev]);
    const mnt = path.join(dir, 'mnt');
    fs.mkdirSync(mnt);
    sh('mount', [dev, mnt]);
    mounted.push(mnt);

    const image = path.join(dir, 'disk.img');
    fs.writeFileSync(image, randomBytes(8 * MIB));
    const archive = path.join(mnt, 'archive');
    await initArchive(image, archive);
    const shas = [sha256(image)];
    const minFree = { bytes: 24 * MIB };
    const reports: Array<{ after: number; report: SpaceGuardReport }> = [];
    for (let k = 1; k <= 9; k++) {
      // 3 MiB of new random data a point: incompressible, so each update costs about that.
      const fd = fs.openSync(image, 'r+');
      fs.writeSync(fd, randomBytes(3 * MIB), 0, 3 * MIB, ((k * 3) % 5) * MIB);
      fs.closeSync(fd);
      // The threshold is given once and stored in the archive for the next snapshots.
      const result = await snapshotArchive(archive, k === 1 ? { minFree } : {});
      expect(result.changed).toBe(true);
      shas.push(sha256(image));
      if (result.spaceGuard) reports.push({ after: k, report: result.spaceGuard });
    }
    expect(reports.length).toBeGreaterThan(0);
    const dropped = reports.flatMap((r) => r.report.dropped);
    for (const { after, report } of reports) {
      expect(report.met).toBe(true);
      expect(report.freeAfter).toBeGreaterThanOrEqual(minFree.bytes);
      expect(report.freeBefore).toBeLessThan(minFree.bytes);
      expect(report.dropped).not.toContain(after);
    }
    const left = (await listStates(archive)).map((s) => s.id);
    expect(left[left.length - 1]).toBe(9);
    // Oldest first: every dropped state is older than every state left.
    expect(Math.max(...dropped)).toBeLessThan(Math.min(...left));
    expect([...dropped, ...left].sort((a, b) => a - b)).toEqual([...Array(10).keys()]);
    for (const id of left) {
      const out = path.join(dir, `restored-${id}`);
      await restoreArchive(archive, { stateId: id }, out);
      expect(sha256(out), `state ${id}`).toBe(shas[id]);
      fs.rmSync(out);
    }

    // Through the CLI: reported in the JSON result and on stderr.
    const fd = fs.openSync(image, 'r+');
    fs.writeSync(fd, randomBytes(3 * MIB), 0, 3 * MIB, 0);
    fs.closeSync(fd);
    const r = tidemark('snapshot', archive, '--json', '--min-free', '40M');
    expect(r.code).toBe(0);
    const json = JSON.parse(r.stdout) as { state: StateInfo; spaceGuard?: SpaceGuardReport };
    expect(json.spaceGuard?.dropped.length).toBeGreaterThan(0);
    expect(json.spaceGuard?.dropped).not.toContain(json.state.id);
    expect(r.stderr).toMatch(
      /space guard: free space .* was below 40\.0 MiB: removed the oldest state/,
    );
  }, 120_000);
});
