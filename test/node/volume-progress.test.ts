/**
 * Progress of folder points: the baseline counts the tree first, a later point takes its total
 * from the last state, both report bytes of files as they go, and a throw from the progress sink
 * (how the app cancels) stops the point without recording a state or calling a file unreadable.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  initVolumeArchive,
  listVolumeStates,
  snapshotVolume,
} from '../../src/main/engine/volume-engine.js';
import { TidemarkError } from '../../src/shared/errors.js';
import { engineHost } from '../helpers/engine.js';
import { tempDir } from '../helpers/tmp.js';

function makeTree(root: string): number {
  fs.mkdirSync(path.join(root, 'a', 'b'), { recursive: true });
  const sizes = [3 << 20, 12_345, 1, 0, 9 << 20];
  sizes.forEach((n, i) =>
    fs.writeFileSync(path.join(root, i % 2 ? 'a' : 'a/b', `f${i}`), Buffer.alloc(n, i + 1)),
  );
  // Excluded by default: never counted.
  fs.mkdirSync(path.join(root, '.cache'));
  fs.writeFileSync(path.join(root, '.cache', 'big'), Buffer.alloc(1 << 20));
  return sizes.reduce((a, b) => a + b, 0);
}

describe('volume point progress', () => {
  it('a baseline and a snapshot report bytes done of a total that matches the tree', async () => {
    const work = tempDir();
    const tree = path.join(work, 'tree');
    const arch = path.join(work, 'arch');
    const bytes = makeTree(tree);
    const seen: Array<[number, number]> = [];
    await initVolumeArchive(tree, arch, {
      useSnapshots: false,
      onProgress: (d, t) => seen.push([d, t]),
    });
    expect(seen[0]).toEqual([0, bytes]);
    expect(seen.at(-1)).toEqual([bytes, bytes]);
    // Reads of 8 MiB report on the way, and nothing goes backwards.
    expect(seen.length).toBeGreaterThan(4);
    for (let i = 1; i < seen.length; i++)
      expect(seen[i]![0]).toBeGreaterThanOrEqual(seen[i - 1]![0]);

    fs.writeFileSync(path.join(tree, 'a', 'new'), Buffer.alloc(1000, 5));
    const later: Array<[number, number]> = [];
    const r = await snapshotVolume(arch, {
      useSnapshots: false,
      onProgress: (d, t) => later.push([d, t]),
    });
    expect(r.changed).toBe(true);
    // The total is the last state's; the tree grew by 1000 bytes since, so it grows with it.
    expect(later[0]).toEqual([0, bytes]);
    expect(later.at(-1)).toEqual([bytes + 1000, bytes + 1000]);
  });

  it('a throw from the progress sink cancels the point: no state, the error as thrown', async () => {
    const work = tempDir();
    const tree = path.join(work, 'tree');
    const arch = path.join(work, 'arch');
    makeTree(tree);
    await initVolumeArchive(tree, arch, { useSnapshots: false });
    fs.writeFileSync(path.join(tree, 'a', 'f1'), Buffer.alloc(20 << 20, 9));
    await expect(
      snapshotVolume(arch, {
        useSnapshots: false,
        onProgress: (d) => {
          if (d > 1 << 20) throw new TidemarkError('job.cancelled', 'cancelled');
        },
      }),
    ).rejects.toThrow('cancelled');
    expect((await listVolumeStates(arch)).map((s) => s.id)).toEqual([0]);
    const again = await snapshotVolume(arch, { useSnapshots: false });
    expect(again.changed && again.state.unreadable).toBeUndefined();
  });

  it('the engine worker passes the progress of a folder job on, and a cancel stops the point', async () => {
    const work = tempDir();
    const tree = path.join(work, 'tree');
    const arch = path.join(work, 'arch');
    const bytes = makeTree(tree);
    const engine = engineHost({ allowCrash: false });
    try {
      const seen: Array<[number, number]> = [];
      await engine.call(
        'init',
        { primary: tree, archive: arch, mode: 'volume' },
        { onProgress: (d, t) => seen.push([d, t]) },
      );
      expect(seen.at(-1)).toEqual([bytes, bytes]);
      fs.writeFileSync(path.join(tree, 'a', 'f1'), Buffer.alloc(64 << 20, 4));
      const abort = new AbortController();
      await expect(
        engine.call(
          'snapshot',
          { archive: arch },
          { signal: abort.signal, onProgress: (d, t) => d < t && abort.abort() },
        ),
      ).rejects.toMatchObject({ code: 'job.cancelled' });
      expect((await engine.call('states', { archive: arch })).map((s) => s.id)).toEqual([0]);
    } finally {
      await engine.close();
    }
  });
});
