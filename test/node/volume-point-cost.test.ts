/**
 * What keeps a watch point's cost to the change: a big file re-read takes the BLAKE3 hash of
 * each block whose scan hash did not move from the last read, and the state hash is kept up to
 * date by merging the moved paths into the tree's order. Both must give exactly what a full
 * computation gives.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { HASH_BYTES } from '../../src/main/engine/block-hash.js';
import { FileBlockReader, type FileContent } from '../../src/main/engine/volume/file-blocks.js';
import {
  comparePaths,
  volumeStateHash,
  type VolumeEntry,
} from '../../src/main/engine/volume/volume-entry.js';
import { VolumeTree } from '../../src/main/engine/volume/volume-tree.js';
import { tempDir } from '../helpers/tmp.js';

const BS = 64 * 1024;

async function readFile(file: string, known?: FileContent): Promise<FileContent> {
  const got = await new FileBlockReader(BS, null).read(Buffer.from(file), known);
  if (got === 'not-a-file') throw new Error('not a file');
  return got;
}

describe('big file re-read with scan hashes', () => {
  it('gives the blocks and content hash a full read gives, after rewrites, appends and truncation', async () => {
    const dir = tempDir('tm-point-cost-');
    const file = path.join(dir, 'big.bin');
    fs.writeFileSync(file, randomBytes(40 * BS + 1234));
    let last = await readFile(file);
    expect(last.scanHashes?.length).toBe(41);
    const edits: Array<(fd: number) => void> = [
      (fd) => fs.writeSync(fd, randomBytes(100), 0, 100, 20 * BS + 7), // inside block 20
      (fd) => fs.writeSync(fd, randomBytes(BS), 0, BS, 3 * BS + BS / 2), // across 3 and 4
      (fd) => fs.writeSync(fd, randomBytes(5000), 0, 5000, fs.fstatSync(fd).size), // append
      (fd) => fs.ftruncateSync(fd, 30 * BS + 99), // shorter, last block partial
      (fd) => fs.ftruncateSync(fd, 30 * BS + 99 + BS), // longer again: zeros past the old end
    ];
    for (const edit of edits) {
      const fd = fs.openSync(file, 'r+');
      edit(fd);
      fs.closeSync(fd);
      const quick = await readFile(file, last);
      const full = await readFile(file);
      expect(quick.size).toBe(full.size);
      expect(quick.blocks.equals(full.blocks)).toBe(true);
      expect(quick.contentHash.equals(full.contentHash)).toBe(true);
      expect([...(quick.scanHashes ?? [])]).toEqual([...(full.scanHashes ?? [])]);
      last = quick;
    }
  });

  it('takes the recorded hash of a block whose scan hash did not move (and only of those)', async () => {
    const dir = tempDir('tm-point-cost-');
    const file = path.join(dir, 'big.bin');
    fs.writeFileSync(file, randomBytes(20 * BS));
    const first = await readFile(file);
    // The recorded hashes are marked: where the reader trusts them, the marks come back.
    const marked = Buffer.from(first.blocks);
    for (let i = 0; i < 20; i++) marked[i * HASH_BYTES] = (marked[i * HASH_BYTES] as number) ^ 0xff;
    const fd = fs.openSync(file, 'r+');
    fs.writeSync(fd, randomBytes(10), 0, 10, 9 * BS + 1);
    fs.closeSync(fd);
    const again = await readFile(file, { ...first, blocks: marked });
    const full = await readFile(file);
    for (let i = 0; i < 20; i++) {
      const got = again.blocks.subarray(i * HASH_BYTES, (i + 1) * HASH_BYTES);
      const want = (i === 9 ? full.blocks : marked).subarray(i * HASH_BYTES, (i + 1) * HASH_BYTES);
      expect(got.equals(want)).toBe(true);
    }
    // Scan hashes out of step with the blocks are not trusted at all.
    const unsure = await readFile(file, { ...first, blocks: marked.subarray(HASH_BYTES) });
    expect(unsure.blocks.equals(full.blocks)).toBe(true);
  });
});

function entry(p: string, n: number): VolumeEntry {
  const file = n % 5 !== 0;
  return {
    path: p,
    type: file ? 'file' : 'dir',
    mode: 0o644,
    uid: 0,
    gid: 0,
    mtimeNs: BigInt(n),
    size: file ? n : 0,
    rdev: 0n,
    ino: BigInt(n),
    ctimeNs: BigInt(n),
    nlink: 1,
    ...(file ? { contentHash: randomBytes(32), blocks: randomBytes(32) } : {}),
  };
}

describe('state hash kept in order', () => {
  it('equals the hash of a full sort after every batch of sets and removals', () => {
    const tree = new VolumeTree();
    let seed = 7;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    let removedFolders = 0;
    const name = (): string => `d${rand(30)}/${rand(2) ? 'e/' : ''}f${rand(400)}\u00e9`;
    for (let batch = 0; batch < 25; batch++) {
      const count = batch === 0 ? 3000 : rand(200);
      for (let i = 0; i < count; i++) {
        const r = rand(10);
        if (r < 5) tree.set(entry(name(), rand(1000)));
        // A folder (multiple of 5), or a file where a folder was: its entries go with it.
        else if (r < 6) tree.set(entry(`d${rand(30)}${rand(2) ? '/e' : ''}`, rand(3) ? 5 : 6));
        else if (r < 9) tree.delete(name());
        else if (tree.delete(`d${rand(30)}`).length > 1) removedFolders++; // with its entries
      }
      if (batch === 24) expect(removedFolders).toBeGreaterThan(0);
      const all = [...tree.values()].sort((a, b) => comparePaths(a.path, b.path));
      expect(tree.sorted().map((e) => e.path)).toEqual(all.map((e) => e.path));
      expect(tree.stateHash()).toBe(volumeStateHash(all));
    }
  });
});

describe('state hash merge at the edges', () => {
  it('moves at the first and last place, a path set again, everything moved, all removed', () => {
    const tree = new VolumeTree();
    const full = (): string =>
      volumeStateHash([...tree.values()].sort((a, b) => comparePaths(a.path, b.path)));
    tree.set(entry('m', 5)); // a folder
    for (let i = 0; i < 50; i++) tree.set(entry(`m/f${String(i).padStart(3, '0')}`, 5 * i + 1));
    expect(tree.stateHash()).toBe(full());
    const steps: Array<() => void> = [
      () => tree.set(entry('a-first', 3)), // before every path
      () => tree.set(entry('z-last', 3)), // after every path
      () => tree.delete('a-first'),
      () => tree.delete('z-last'),
      () => tree.set(entry('m/f000', 7)), // the first kept entry, set again
      () => tree.set(entry('m/f049', 8)), // the last
      () => {
        tree.delete('m/f010'); // removed, then back with another content
        tree.set(entry('m/f010', 9));
        tree.set(entry('m/f0105', 9)); // between two kept ones
      },
      () => {
        for (const e of [...tree.values()])
          if (e.type === 'file') tree.set(entry(e.path, e.size + 1));
      },
      () => expect(tree.delete('m').length).toBeGreaterThan(50), // with everything in it
      () => tree.set(entry('only', 4)),
    ];
    for (const step of steps) {
      step();
      expect(tree.sorted().map((e) => e.path)).toEqual(
        [...tree.values()].map((e) => e.path).sort(comparePaths),
      );
      expect(tree.stateHash()).toBe(full());
    }
  });
});
