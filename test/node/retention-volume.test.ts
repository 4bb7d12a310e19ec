import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Archive } from '../../src/main/engine/archive.js';
import { rebuildCatalog } from '../../src/main/engine/device-engine.js';
import { dropStates } from '../../src/main/engine/retention/drop-states.js';
import { archiveBytes } from '../../src/main/engine/retention/prune.js';
import {
  initVolumeArchive,
  listVolumeStates,
  restoreVolume,
  snapshotVolume,
  verifyVolume,
} from '../../src/main/engine/volume-engine.js';
import { tempDir } from '../helpers/tmp.js';
import { describeTree, prng, randomBytes, treeDifferences } from '../helpers/tree.js';

// Collapse and integration of volume updates: folders removed, a folder replaced by a file and
// made a folder again, renames and content that comes back, all merged across dropped states.

type Step = (root: string, rand: (n: number) => number) => void;

const steps: Step[] = [
  (r, rand) => fs.writeFileSync(path.join(r, 'a/one.bin'), randomBytes(rand, 200_000)),
  (r) => fs.rmSync(path.join(r, 'b'), { recursive: true }),
  (r, rand) => {
    fs.rmSync(path.join(r, 'c'), { recursive: true });
    fs.writeFileSync(path.join(r, 'c'), randomBytes(rand, 1000));
  },
  (r, rand) => {
    fs.rmSync(path.join(r, 'c'));
    fs.mkdirSync(path.join(r, 'c'));
    fs.writeFileSync(path.join(r, 'c/new.txt'), randomBytes(rand, 70_000));
  },
  (r) => fs.renameSync(path.join(r, 'a/one.bin'), path.join(r, 'moved.bin')),
  (r, rand) => {
    fs.mkdirSync(path.join(r, 'b/deep'), { recursive: true });
    fs.writeFileSync(path.join(r, 'b/deep/x'), randomBytes(rand, 5000));
  },
  (r) => fs.copyFileSync(path.join(r, 'moved.bin'), path.join(r, 'b/copy.bin')),
  (r, rand) => fs.writeFileSync(path.join(r, 'moved.bin'), randomBytes(rand, 150_000)),
];

describe('retention collapse on a volume archive', () => {
  it('every kept state restores identical after collapses and an integration', async () => {
    const dir = tempDir();
    const src = path.join(dir, 'src');
    const archive = path.join(dir, 'archive');
    const rand = prng(11);
    fs.mkdirSync(path.join(src, 'a'), { recursive: true });
    fs.mkdirSync(path.join(src, 'b/sub'), { recursive: true });
    fs.mkdirSync(path.join(src, 'c/inner'), { recursive: true });
    fs.writeFileSync(path.join(src, 'b/sub/f'), randomBytes(rand, 90_000));
    fs.writeFileSync(path.join(src, 'c/inner/g'), randomBytes(rand, 10_000));
    fs.writeFileSync(path.join(src, 'keep.txt'), 'stays\n');
    const trees = [describeTree(src)];
    await initVolumeArchive(src, archive, { useSnapshots: false });
    for (const step of steps) {
      step(src, rand);
      const r = await snapshotVolume(archive, { useSnapshots: false });
      expect(r.changed).toBe(true);
      trees.push(describeTree(src));
    }
    const before = await withArchive(archive, (a) => archiveBytes(a));
    await withArchive(archive, (a) => dropStates(a, new Set([0, 1, 3, 4, 5, 7])));
    const check = async (): Promise<number[]> => {
      const ids = (await listVolumeStates(archive)).map((s) => s.id);
      for (const id of ids) {
        const out = path.join(dir, `out-${id}`);
        await restoreVolume(archive, { stateId: id }, out);
        expect(treeDifferences(trees[id]!, describeTree(out)), `state ${id}`).toEqual([]);
        fs.rmSync(out, { recursive: true });
      }
      return ids;
    };
    expect(await check()).toEqual([2, 6, 8]);
    expect(await withArchive(archive, (a) => archiveBytes(a))).toBeLessThan(before);
    fs.rmSync(path.join(archive, 'catalog.sqlite'));
    expect((await rebuildCatalog(archive)).states).toBe(3);
    expect(await check()).toEqual([2, 6, 8]);
    expect((await verifyVolume(archive, { deep: true })).ok).toBe(true);
    await withArchive(archive, (a) => dropStates(a, new Set([2, 6])));
    expect(await check()).toEqual([8]);
  });
});

async function withArchive<T>(dir: string, fn: (a: Archive) => Promise<T>): Promise<T> {
  const a = await Archive.open(dir, { write: true });
  try {
    return await fn(a);
  } finally {
    await a.close();
  }
}
