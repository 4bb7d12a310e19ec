/**
 * The scan hashes of big files are kept from one process to the next (volume.scan-hashes), so
 * the first point after a start hashes only the blocks that changed. A record is taken only for
 * the very content it was made from; a damaged cache is ignored whole; and a point that used it
 * records what a full read records.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Archive } from '../../src/main/engine/archive.js';
import {
  initVolumeArchive,
  snapshotVolume,
  verifyVolume,
  restoreVolume,
} from '../../src/main/engine/volume-engine.js';
import { FileBlockReader } from '../../src/main/engine/volume/file-blocks.js';
import {
  loadScanHashes,
  saveScanHashes,
  SCAN_HASHES_NAME,
} from '../../src/main/engine/volume/scan-hash-cache.js';
import { loadVolumeTree } from '../../src/main/engine/volume/tree-loader.js';
import type { VolumeEntry } from '../../src/main/engine/volume/volume-entry.js';
import { VolumeTree } from '../../src/main/engine/volume/volume-tree.js';
import { tempDir } from '../helpers/tmp.js';

const BS = 64 * 1024;

async function entryOf(file: string, rel: string): Promise<VolumeEntry> {
  const got = await new FileBlockReader(BS, null).read(Buffer.from(file));
  if (got === 'not-a-file') throw new Error('not a file');
  return {
    path: rel,
    type: 'file',
    mode: 0o644,
    uid: 0,
    gid: 0,
    mtimeNs: 1n,
    size: got.size,
    rdev: 0n,
    ino: 1n,
    ctimeNs: 1n,
    nlink: 1,
    contentHash: got.contentHash,
    blocks: got.blocks,
    ...(got.scanHashes ? { scanHashes: got.scanHashes } : {}),
  };
}

/** The entry as a tree loaded from the archive has it: no scan hashes. */
function bare(e: VolumeEntry): VolumeEntry {
  const { scanHashes: _dropped, ...rest } = e;
  return rest;
}

describe('scan hashes kept across processes', () => {
  it('gives back the scan hashes of the same content, and only of it', async () => {
    const dir = tempDir('tm-scan-cache-');
    fs.writeFileSync(path.join(dir, 'a.bin'), randomBytes(30 * BS + 5));
    fs.writeFileSync(path.join(dir, 'b\u00e9.bin'), randomBytes(20 * BS));
    const a = await entryOf(path.join(dir, 'a.bin'), 'a.bin');
    const b = await entryOf(path.join(dir, 'b\u00e9.bin'), 'd/b\u00c3\u00a9.bin');
    expect(a.scanHashes?.length).toBe(31);
    const saved = new VolumeTree();
    saved.set(a);
    saved.set(b);
    const file = path.join(dir, SCAN_HASHES_NAME);
    saveScanHashes(file, saved);

    const loaded = new VolumeTree();
    loaded.set(bare(a));
    // b's content changed since the cache was written: its record must not be taken.
    fs.writeFileSync(path.join(dir, 'b\u00e9.bin'), randomBytes(20 * BS));
    loaded.set(bare(await entryOf(path.join(dir, 'b\u00e9.bin'), 'd/b\u00c3\u00a9.bin')));
    expect(loadScanHashes(file, loaded)).toBe(1);
    expect([...(loaded.get('a.bin')?.scanHashes ?? [])]).toEqual([...(a.scanHashes ?? [])]);
    expect(loaded.get('d/b\u00c3\u00a9.bin')?.scanHashes).toBeUndefined();

    // One flipped bit anywhere: the whole file is ignored.
    const raw = fs.readFileSync(file);
    raw[raw.length >> 1] = (raw[raw.length >> 1] as number) ^ 1;
    fs.writeFileSync(file, raw);
    const again = new VolumeTree();
    again.set(bare(a));
    expect(loadScanHashes(file, again)).toBe(0);
    expect(again.get('a.bin')?.scanHashes).toBeUndefined();
    expect(loadScanHashes(path.join(dir, 'missing'), again)).toBe(0);
  });

  it('a snapshot in a new process after init records what a full read records', async () => {
    const work = tempDir('tm-scan-cache-');
    const tree = path.join(work, 'tree');
    const arch = path.join(work, 'arch');
    fs.mkdirSync(tree);
    fs.writeFileSync(path.join(tree, 'big.bin'), randomBytes(64 * BS + 77));
    fs.writeFileSync(path.join(tree, 'small.txt'), 'hello');
    await initVolumeArchive(tree, arch, { useSnapshots: false });
    // The next process's tree, loaded from the archive, takes the big file's scan hashes.
    const archive = await Archive.open(arch, { write: false });
    try {
      const loaded = await loadVolumeTree(archive, 0);
      expect(loadScanHashes(path.join(arch, SCAN_HASHES_NAME), loaded)).toBe(1);
      expect(loaded.get('big.bin')?.scanHashes?.length).toBe(65);
    } finally {
      await archive.close();
    }

    // A rewrite inside one block, an append: the cached scan hashes say which blocks moved.
    const fd = fs.openSync(path.join(tree, 'big.bin'), 'r+');
    fs.writeSync(fd, randomBytes(300), 0, 300, 40 * BS + 9);
    fs.writeSync(fd, randomBytes(BS), 0, BS, 64 * BS + 77);
    fs.closeSync(fd);
    const first = await snapshotVolume(arch, { useSnapshots: false });
    expect(first.changed).toBe(true);
    // A damaged cache is only slower: the next point reads every block again.
    fs.writeFileSync(path.join(arch, SCAN_HASHES_NAME), 'not a cache');
    fs.appendFileSync(path.join(tree, 'big.bin'), randomBytes(1000));
    const second = await snapshotVolume(arch, { useSnapshots: false });
    expect(second.changed).toBe(true);

    const report = await verifyVolume(arch, { deep: true });
    expect(report.ok).toBe(true);
    const out = path.join(work, 'out');
    await restoreVolume(arch, { stateId: 2 }, out);
    expect(
      fs
        .readFileSync(path.join(out, 'big.bin'))
        .equals(fs.readFileSync(path.join(tree, 'big.bin'))),
    ).toBe(true);
    const back1 = path.join(work, 'back1');
    await restoreVolume(arch, { stateId: 1 }, back1);
    expect(fs.statSync(path.join(back1, 'big.bin')).size).toBe(65 * BS + 77);
  });
});
