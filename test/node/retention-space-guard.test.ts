import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { describeSpaceGuard, type SpaceGuardReport } from '../../src/shared/retention.js';
import type { StateInfo } from '../../src/shared/states.js';
import {
  initArchive,
  listStates,
  restoreArchive,
  snapshotArchive,
} from '../../src/main/engine/device-engine.js';
import { Archive } from '../../src/main/engine/archive.js';
import { setPinned } from '../../src/main/engine/retention/pins.js';
import { guardSpace, parseMinFree } from '../../src/main/engine/retention/space-guard.js';
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

describe('space guard without room to gain', () => {
  it('removes every state but the newest and the pinned ones, and says the threshold was not met', async () => {
    const dir = tempDir();
    const image = path.join(dir, 'disk.img');
    const archive = path.join(dir, 'archive');
    fs.writeFileSync(image, randomBytes(MIB));
    await initArchive(image, archive);
    const shas = [sha256(image)];
    for (let k = 1; k <= 4; k++) {
      const fd = fs.openSync(image, 'r+');
      fs.writeSync(fd, randomBytes(50_000), 0, 50_000, k * 100_000);
      fs.closeSync(fd);
      await snapshotArchive(archive);
      shas.push(sha256(image));
    }
    const a = await Archive.open(archive, { write: true });
    let report: SpaceGuardReport | null;
    try {
      await setPinned(a, 2, true);
      // A secondary that never has room: the guard must stop, not loop or touch the newest.
      report = await guardSpace(a, { percent: 50 }, () =>
        Promise.resolve({ free: 10 * MIB, total: 100 * MIB }),
      );
    } finally {
      await a.close();
    }
    expect(report).toEqual({
      minFreeBytes: 50 * MIB,
      freeBefore: 10 * MIB,
      freeAfter: 10 * MIB,
      dropped: [0, 1, 3],
      met: false,
      reason: 'only the newest and pinned states are left',
    });
    expect((await listStates(archive)).map((s) => s.id)).toEqual([2, 4]);
    for (const id of [2, 4]) {
      const out = path.join(dir, `r${id}`);
      await restoreArchive(archive, { stateId: id }, out);
      expect(sha256(out)).toBe(shas[id]);
    }
  });
});

/** A 1 MiB image archived with `count` later states, each rewriting the same 128 KiB. */
async function archiveOfStates(count: number) {
  const dir = tempDir();
  const image = path.join(dir, 'disk.img');
  const archive = path.join(dir, 'archive');
  fs.writeFileSync(image, randomBytes(MIB));
  await initArchive(image, archive);
  const shas = [sha256(image)];
  for (let k = 1; k <= count; k++) {
    const fd = fs.openSync(image, 'r+');
    fs.writeSync(fd, randomBytes(128 * 1024), 0, 128 * 1024, 256 * 1024);
    fs.closeSync(fd);
    await snapshotArchive(archive);
    shas.push(sha256(image));
  }
  return { dir, archive, shas };
}

/** A nearly full disk: `start` bytes free, plus what the archive's updates have shrunk by since. */
function simulatedDisk(a: Archive, start: number) {
  const stored = (): number => a.catalog.states().reduce((n, r) => n + r.storedBytes, 0);
  const initial = stored();
  return () => Promise.resolve({ free: start + initial - stored(), total: 100 * MIB });
}

async function expectRestores(dir: string, archive: string, shas: string[]): Promise<number[]> {
  const left = (await listStates(archive)).map((s) => s.id);
  for (const id of left) {
    const out = path.join(dir, `restored-${id}`);
    await restoreArchive(archive, { stateId: id }, out);
    expect(sha256(out), `state ${id}`).toBe(shas[id]);
    fs.rmSync(out);
  }
  return left;
}

describe('space guard on a nearly full disk (simulated free space)', () => {
  // Also with barely room for a new base: the states after it add nothing to what it writes.
  it.each([
    ['plenty of room', 10 * MIB],
    ['room for one new base', 0],
  ])(
    'drops the run of oldest states it needs in one go: the base is rewritten once (%s)',
    async (_what, room) => {
      const { dir, archive, shas } = await archiveOfStates(6);
      const a = await Archive.open(archive, { write: true });
      let report: SpaceGuardReport | null;
      let writes = 0;
      try {
        const create = a.store.create.bind(a.store);
        a.store.create = (name) => {
          writes++;
          return create(name);
        };
        const one = (a.catalog.state(1) as { storedBytes: number }).storedBytes;
        const start =
          room || (a.catalog.state(0) as { storedBytes: number }).storedBytes + MIB + 65536;
        report = await guardSpace(
          a,
          { bytes: start + Math.floor(2.5 * one) },
          simulatedDisk(a, start),
        );
      } finally {
        await a.close();
      }
      expect(report?.met).toBe(true);
      expect(report?.dropped).toEqual([0, 1, 2]);
      expect(writes).toBe(1);
      expect(await expectRestores(dir, archive, shas)).toEqual([3, 4, 5, 6]);
    },
  );

  it('keeps the base when integrating it would not fit, drops the oldest later states instead, and says so', async () => {
    const { dir, archive, shas } = await archiveOfStates(4);
    const a = await Archive.open(archive, { write: true });
    let report: SpaceGuardReport | null;
    try {
      // Less free than the base's size: a new base could not be written beside the old one.
      const start = 1.5 * MIB;
      const one = (a.catalog.state(1) as { storedBytes: number }).storedBytes;
      report = await guardSpace(
        a,
        { bytes: start + Math.floor(1.5 * one) },
        simulatedDisk(a, start),
      );
    } finally {
      await a.close();
    }
    expect(report?.met).toBe(true);
    expect(report?.dropped).toEqual([1, 2]);
    expect(report?.notes).toEqual([
      expect.stringMatching(
        /^state 0 was kept: integrating it into the base needs about .* MiB free and there is 1\.5 MiB/,
      ),
    ]);
    expect(describeSpaceGuard(report as SpaceGuardReport)).toMatch(/state 0 was kept/);
    expect(await expectRestores(dir, archive, shas)).toEqual([0, 3, 4]);
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

/** A fresh ext4 of `mib` MiB on a loop device, mounted under `dir` (undone after the test). */
function smallExt4(dir: string, mib: number): string {
  const fsImage = path.join(dir, 'ext4.img');
  fs.writeFileSync(fsImage, Buffer.alloc(0));
  fs.truncateSync(fsImage, mib * MIB);
  const dev = sh('losetup', ['--find', '--show', fsImage]).trim();
  attached.push(dev);
  sh('mkfs.ext4', ['-q', '-m', '0', dev]);
  const mnt = path.join(dir, 'mnt');
  fs.mkdirSync(mnt);
  sh('mount', [dev, mnt]);
  mounted.push(mnt);
  return mnt;
}

/** Fills the filesystem at `mnt` with a file of zeros until about `left` bytes are free. */
function fillTo(mnt: string, left: number): void {
  const st = fs.statfsSync(mnt);
  const extra = st.bavail * st.bsize - left;
  if (extra <= 0) return;
  const fd = fs.openSync(path.join(mnt, `filler-${Date.now()}`), 'w');
  const chunk = Buffer.alloc(MIB);
  for (let done = 0; done < extra; done += chunk.length)
    fs.writeSync(fd, chunk, 0, Math.min(chunk.length, extra - done));
  fs.fsyncSync(fd);
  fs.closeSync(fd);
}

function incompleteFiles(dir: string): string[] {
  return (fs.readdirSync(dir, { recursive: true }) as string[]).filter((n) =>
    n.includes('.incomplete-'),
  );
}

describe.skipIf(skip)(
  `space guard on a nearly full ext4${skip ? ` (skipped: ${skip})` : ''}`,
  () => {
    it('never fails the snapshot for its own freeing: a failed integration leaves every state, the base is kept when it cannot fit', async () => {
      const dir = tempDir();
      const mnt = smallExt4(dir, 64);
      const image = path.join(dir, 'disk.img');
      const archive = path.join(mnt, 'archive');
      fs.writeFileSync(image, randomBytes(8 * MIB));
      await initArchive(image, archive);
      const shas = [sha256(image)];
      const rewrite = (): void => {
        // 2 MiB of new random data over the same place: each state replaces the last one's blocks.
        const fd = fs.openSync(image, 'r+');
        fs.writeSync(fd, randomBytes(2 * MIB), 0, 2 * MIB, 0);
        fs.closeSync(fd);
      };
      for (let k = 1; k <= 4; k++) {
        rewrite();
        await snapshotArchive(archive);
        shas.push(sha256(image));
      }
      fillTo(mnt, 6 * MIB);

      // A guard told there is room tries to integrate state 0 (an 8 MiB base): the disk is full.
      const a = await Archive.open(archive, { write: true });
      let report: SpaceGuardReport | null;
      try {
        report = await guardSpace(a, { bytes: 40 * MIB }, () =>
          Promise.resolve({ free: 20 * MIB, total: 64 * MIB }),
        );
      } finally {
        await a.close();
      }
      expect(report?.met).toBe(false);
      expect(report?.notes?.[0]).toMatch(
        /^integrating state 0 into the base ran out of space \(the backup disk is full.*\): the base was left as it was$/,
      );
      expect(report?.dropped).toEqual([1, 2, 3]);
      expect(report?.reason).toMatch(
        /state 0 are left, and integrating state 0 into the base does not fit/,
      );
      expect(incompleteFiles(archive)).toEqual([]);
      expect(await expectRestores(dir, archive, shas)).toEqual([0, 4]);

      // A real snapshot below the threshold with less free than the base takes: it goes on, and the
      // guard removes what it can without touching the base.
      fillTo(mnt, 6 * MIB);
      rewrite();
      const result = await snapshotArchive(archive, { minFree: { bytes: 7 * MIB } });
      expect(result.changed).toBe(true);
      shas.push(sha256(image));
      expect(result.spaceGuard?.dropped).toEqual([4]);
      expect(result.spaceGuard?.met).toBe(false);
      expect(result.spaceGuard?.notes?.join('\n')).toMatch(
        /state 0 was kept: integrating it into the base needs about 9\.\d MiB free/,
      );
      expect(describeSpaceGuard(result.spaceGuard as SpaceGuardReport)).toMatch(
        /still below: only the newest and pinned states and state 0 are left/,
      );
      expect(incompleteFiles(archive)).toEqual([]);
      expect(await expectRestores(dir, archive, shas)).toEqual([0, 5]);
    }, 120_000);
  },
);
