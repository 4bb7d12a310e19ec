import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Archive } from '../../src/main/engine/archive.js';
import type { Clock } from '../../src/main/engine/clock.js';
import {
  initArchive,
  listStates,
  rebuildCatalog,
  restoreArchive,
  snapshotArchive,
  verify,
} from '../../src/main/engine/device-engine.js';
import { walkRecords } from '../../src/main/engine/format/record-walker.js';
import { RECORD_BLOCK, RECORD_HEADER_BYTES } from '../../src/main/engine/format/update-format.js';
import { UpdateReader } from '../../src/main/engine/format/update-reader.js';
import { collapseUpdates } from '../../src/main/engine/retention/collapse.js';
import { dropStates } from '../../src/main/engine/retention/drop-states.js';
import { loadStateMap } from '../../src/main/engine/state-loader.js';
import { archiveBytes } from '../../src/main/engine/retention/prune.js';
import { sha256, tempDir } from '../helpers/tmp.js';

// Collapse and integration on a real device archive: every kept state restores byte-identical,
// the catalog rebuilt from the updates alone agrees, and the archive shrinks by exactly what the
// dropped states held alone.

const BS = 16384;

function prng(seed: number): (n: number) => number {
  let x = seed >>> 0 || 1;
  return (n: number) => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x % n;
  };
}

function randomBytes(rand: (n: number) => number, length: number): Buffer {
  const b = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) b[i] = rand(256);
  return b;
}

function writeAt(file: string, offset: number, data: Buffer): void {
  const fd = fs.openSync(file, 'r+');
  fs.writeSync(fd, data, 0, data.length, offset);
  fs.closeSync(fd);
}

function hourlyClock(start = Date.parse('2026-11-01T00:00:00Z')): Clock {
  let t = start;
  return { now: () => new Date((t += 3_600_000)) };
}

/** An image archived over `n` intervals; returns the sha256 of the image at every state. */
export async function buildDeviceArchive(dir: string, n: number, seed = 5) {
  const image = path.join(dir, 'disk.img');
  const archive = path.join(dir, 'archive');
  const rand = prng(seed);
  const size = 4 * 1024 * 1024 + 3000;
  fs.writeFileSync(image, Buffer.alloc(size));
  writeAt(image, 0, randomBytes(rand, 1024 * 1024));
  const clock = hourlyClock();
  const shas: string[] = [sha256(image)];
  await initArchive(image, archive, { blockSize: BS, clock });
  let saved: Buffer | null = null;
  for (let k = 1; k <= n; k++) {
    const writes = 1 + rand(8);
    for (let w = 0; w < writes; w++) {
      const length = 1 + rand(3 * BS);
      const offset = rand(size - length);
      const data = rand(5) === 0 ? Buffer.alloc(length) : randomBytes(rand, length);
      writeAt(image, offset, data);
      // Now and then content comes back (a block stored by one state, used again later).
      if (k === 2 && w === 0) saved = Buffer.from(data);
    }
    if (k % 3 === 0 && saved) writeAt(image, 2 * 1024 * 1024, saved);
    const result = await snapshotArchive(archive, { clock });
    expect(result.changed).toBe(true);
    shas.push(sha256(image));
  }
  return { image, archive, shas };
}

async function restoresAll(dir: string, archive: string, shas: string[]): Promise<number[]> {
  const ids = (await listStates(archive)).map((s) => s.id);
  for (const id of ids) {
    const out = path.join(dir, `restored-${id}`);
    const report = await restoreArchive(archive, { stateId: id }, out);
    expect(report.verified).toBe(true);
    expect(sha256(out), `state ${id}`).toBe(shas[id]);
    fs.rmSync(out);
  }
  return ids;
}

describe('retention collapse on a device archive', () => {
  it('collapses middle runs and integrates the oldest into the base; kept states restore byte-identical', async () => {
    const dir = tempDir();
    const { archive, shas } = await buildDeviceArchive(dir, 9);
    const before = await withArchive(archive, (a) => archiveBytes(a));
    const runs = await withArchive(archive, (a) => dropStates(a, new Set([0, 1, 3, 4, 5, 8])));
    expect(runs.map((r) => [r.states, r.parent])).toEqual([
      [[8, 9], 7],
      [[3, 4, 5, 6], 2],
      [[0, 1, 2], null],
    ]);
    expect(await restoresAll(dir, archive, shas)).toEqual([2, 6, 7, 9]);
    const after = await withArchive(archive, (a) => archiveBytes(a));
    expect(after).toBeLessThan(before);
    expect(fs.readdirSync(path.join(archive, 'updates')).sort()).toEqual([
      '0000000002-0000000000.tmu',
      '0000000006-0000000003.tmu',
      '0000000007.tmu',
      '0000000009-0000000008.tmu',
    ]);
    // The updates alone say which states exist.
    fs.rmSync(path.join(archive, 'catalog.sqlite'));
    expect((await rebuildCatalog(archive)).states).toBe(4);
    expect(await restoresAll(dir, archive, shas)).toEqual([2, 6, 7, 9]);
    expect((await verify(archive, { deep: true })).ok).toBe(true);
    // A second prune over collapsed updates nests their ranges.
    await withArchive(archive, (a) => dropStates(a, new Set([2, 7])));
    expect(await restoresAll(dir, archive, shas)).toEqual([6, 9]);
    expect(fs.readdirSync(path.join(archive, 'updates')).sort()).toEqual([
      '0000000006-0000000000.tmu',
      '0000000009-0000000007.tmu',
    ]);
    expect((await verify(archive, { deep: true })).ok).toBe(true);
    // Snapshots go on after a prune.
    const more = await snapshotArchive(archive);
    expect(more.changed).toBe(false);
  });
});

/** Bytes of stored-block records (header + stored bytes) in the live updates, by hash. */
async function storedBlocks(a: Archive): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const name of await a.updateNames()) {
    const r = await UpdateReader.open(a.store, name);
    const [start, end] = r.recordsRange;
    await walkRecords(a.store, name, start, end, (h, _o, stored) => {
      if (h.kind === RECORD_BLOCK)
        out.set(h.hash.toString('hex'), RECORD_HEADER_BYTES + stored.length);
    });
  }
  return out;
}

describe('a prune cut between its commit and its catalog record', () => {
  it('readers still see the old states; the next writer finishes the collapse', async () => {
    const dir = tempDir();
    const { archive, shas } = await buildDeviceArchive(dir, 5, 3);
    // The collapse of 2..4 committed, as a crash would leave it: nothing recorded, nothing deleted.
    await withArchive(archive, async (a) => {
      const rows = a.catalog.states().filter((r) => r.id >= 2 && r.id <= 4);
      await collapseUpdates({
        store: a.store,
        kind: 'device',
        blockSize: a.manifest.blockSize,
        sources: rows.map((r) => r.update),
        keepBlob: () => true,
      });
    });
    expect(fs.readdirSync(path.join(archive, 'updates'))).toContain('0000000004-0000000002.tmu');
    // A reader opens without touching anything: the old catalog and objects are still whole.
    expect(await restoresAll(dir, archive, shas)).toEqual([0, 1, 2, 3, 4, 5]);
    // A writer finishes it: the catalog follows the committed update, what it replaced goes.
    const ids = await withArchive(archive, async (a) => a.catalog.states().map((s) => s.id));
    expect(ids).toEqual([0, 1, 4, 5]);
    expect(fs.readdirSync(path.join(archive, 'updates')).sort()).toEqual([
      '0000000000.tmu',
      '0000000001.tmu',
      '0000000004-0000000002.tmu',
      '0000000005.tmu',
    ]);
    expect(await restoresAll(dir, archive, shas)).toEqual([0, 1, 4, 5]);
  });
});

describe('what a prune frees', () => {
  it('exactly the blocks that only dropped states used; every block a kept state uses stays', async () => {
    const dir = tempDir();
    const { archive } = await buildDeviceArchive(dir, 8, 9);
    const drop = new Set([0, 2, 3, 5, 6]);
    const { before, used } = await withArchive(archive, async (a) => {
      const used = new Set<string>();
      for (const s of a.catalog.states()) {
        if (drop.has(s.id)) continue;
        const map = await loadStateMap(a, s.id);
        for (let i = 0; i < map.blockCount; i++) used.add(map.hashAt(i).toString('hex'));
      }
      return { before: await storedBlocks(a), used };
    });
    const alone = [...before].filter(([h]) => !used.has(h));
    expect(alone.length).toBeGreaterThan(0);
    const after = await withArchive(archive, async (a) => {
      await dropStates(a, drop);
      return storedBlocks(a);
    });
    expect([...after.keys()].sort()).toEqual([...before.keys()].filter((h) => used.has(h)).sort());
    const sum = (m: Iterable<[string, number]>): number => [...m].reduce((n, [, b]) => n + b, 0);
    expect(sum(before) - sum(after)).toBe(sum(alone));
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
