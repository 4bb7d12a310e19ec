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
} from '../../src/main/engine/device-engine.js';
import { UpdateReader } from '../../src/main/engine/format/update-reader.js';
import { Journal } from '../../src/main/engine/journal.js';
import { sha256, tempDir } from '../helpers/tmp.js';

const BS = 16384;

/** A clock that moves one minute per reading, from a fixed start. */
function steppingClock(
  start = Date.parse('2026-01-01T00:00:00Z'),
): Clock & { at(i: number): Date } {
  let t = start;
  return {
    now: () => new Date((t += 60_000)),
    at: (i: number) => new Date(start + (i + 1) * 60_000),
  };
}

/** Deterministic pseudo-random bytes (xorshift32), so failures reproduce. */
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

async function updateMeta(archiveDir: string, stateId: number) {
  const archive = await Archive.open(archiveDir, { write: false });
  try {
    const row = archive.catalog.state(stateId);
    const reader = await UpdateReader.open(archive.store, row!.update);
    const entries: number[] = [];
    await reader.forEachMapEntry((i) => entries.push(i));
    return { meta: reader.meta, entries };
  } finally {
    await archive.close();
  }
}

describe('device engine on a real image file', () => {
  it('restores every state of 12 random intervals byte-identical to a copy taken at its point', async () => {
    const dir = tempDir();
    const image = path.join(dir, 'disk.img');
    const archive = path.join(dir, 'archive');
    const rand = prng(42);
    // 6 MiB + an odd tail, so the last block is short.
    const size = 6 * 1024 * 1024 + 5000;
    fs.writeFileSync(image, Buffer.alloc(size));
    writeAt(image, 0, randomBytes(rand, 2 * 1024 * 1024));
    const clock = steppingClock();
    const copies: string[] = [];
    const save = (id: number): void => {
      const copy = path.join(dir, `copy-${id}`);
      fs.copyFileSync(image, copy);
      copies[id] = sha256(copy);
    };
    save(0);
    const baseline = await initArchive(image, archive, { blockSize: BS, clock });
    expect(baseline.id).toBe(0);

    for (let k = 1; k <= 12; k++) {
      const writes = 1 + rand(20);
      for (let w = 0; w < writes; w++) {
        const length = 1 + rand(3 * BS);
        const offset = rand(size - length);
        // Some writes are zeros (freed space), most are random data.
        writeAt(image, offset, rand(5) === 0 ? Buffer.alloc(length) : randomBytes(rand, length));
      }
      const result = await snapshotArchive(archive, { clock });
      expect(result.changed).toBe(true);
      if (result.changed) expect(result.state.id).toBe(k);
      save(k);
    }
    const states = await listStates(archive);
    expect(states.map((s) => s.id)).toEqual([...Array(13).keys()]);
    for (const s of states) {
      const out = path.join(dir, `restored-${s.id}`);
      const report = await restoreArchive(archive, { stateId: s.id }, out);
      expect(report.verified).toBe(true);
      expect(sha256(out), `state ${s.id}`).toBe(copies[s.id]);
      fs.rmSync(out);
    }
    // --at picks the latest state at or before a time.
    const at = await restoreArchive(
      archive,
      { at: new Date(Date.parse(states[5]!.time) + 30_000) },
      path.join(dir, 'at'),
    );
    expect(at.state).toBe(5);
    expect(sha256(path.join(dir, 'at'))).toBe(copies[5]);
  });

  it('records no state when nothing changed', async () => {
    const dir = tempDir();
    const image = path.join(dir, 'disk.img');
    fs.writeFileSync(image, randomBytes(prng(1), 256 * 1024));
    await initArchive(image, path.join(dir, 'a'), { blockSize: BS });
    const before = fs.readdirSync(path.join(dir, 'a', 'updates'));
    const result = await snapshotArchive(path.join(dir, 'a'));
    expect(result.changed).toBe(false);
    expect(fs.readdirSync(path.join(dir, 'a', 'updates'))).toEqual(before);
    expect(await listStates(path.join(dir, 'a'))).toHaveLength(1);
  });

  it('consolidates a block written 1,000 times in an interval into one entry with its last content', async () => {
    const dir = tempDir();
    const image = path.join(dir, 'disk.img');
    const archive = path.join(dir, 'a');
    fs.writeFileSync(image, randomBytes(prng(7), 64 * BS));
    await initArchive(image, archive, { blockSize: BS });
    const journal = Journal.open(path.join(dir, 'journal'), BS, 64 * BS);
    const rand = prng(9);
    let last: Buffer = Buffer.alloc(0);
    for (let i = 0; i < 1000; i++) {
      last = randomBytes(rand, BS);
      writeAt(image, 10 * BS, last);
      journal.write(10 * BS, last);
    }
    // The journal logged the range once, not 1,000 times.
    expect(fs.statSync(path.join(dir, 'journal')).size).toBe(16);
    const result = await snapshotArchive(archive, { journal });
    expect(result.changed && result.state.changedBlocks).toBe(1);
    const { meta, entries } = await updateMeta(archive, 1);
    expect(entries).toEqual([10]);
    expect(meta.storedBlocks).toBe(1);
    await restoreArchive(archive, { stateId: 1 }, path.join(dir, 'r'));
    expect(
      fs
        .readFileSync(path.join(dir, 'r'))
        .subarray(10 * BS, 11 * BS)
        .equals(last),
    ).toBe(true);
    expect(journal.dirtyCount).toBe(0);
    journal.close();
  });

  it('tracks journal writes that straddle block boundaries, and survives a restart of the journal', async () => {
    const dir = tempDir();
    const image = path.join(dir, 'disk.img');
    const archive = path.join(dir, 'a');
    fs.writeFileSync(image, randomBytes(prng(3), 32 * BS));
    await initArchive(image, archive, { blockSize: BS });
    const journalFile = path.join(dir, 'journal');
    const first = Journal.open(journalFile, BS, 32 * BS);
    const data = randomBytes(prng(4), 2 * BS + 200);
    writeAt(image, 5 * BS - 100, data);
    first.write(5 * BS - 100, data);
    first.close();
    // A new process reads the persisted journal: nothing written before the crash is lost.
    const journal = Journal.open(journalFile, BS, 32 * BS);
    expect(journal.dirtyBlocks()).toEqual([4, 5, 6, 7]);
    const result = await snapshotArchive(archive, { journal });
    expect(result.changed && result.state.changedBlocks).toBe(4);
    await restoreArchive(archive, { stateId: 1 }, path.join(dir, 'r'));
    expect(sha256(path.join(dir, 'r'))).toBe(sha256(image));
    journal.close();
  });

  it('records zero blocks as zero, never stores them, and restores them sparse', async () => {
    const dir = tempDir();
    const image = path.join(dir, 'disk.img');
    const archive = path.join(dir, 'a');
    fs.writeFileSync(image, Buffer.alloc(256 * BS));
    writeAt(image, 3 * BS, randomBytes(prng(5), BS));
    const state0 = await initArchive(image, archive, { blockSize: BS });
    expect(state0.changedBlocks).toBe(256);
    const base = await updateMeta(archive, 0);
    expect(base.meta.storedBlocks).toBe(1);
    expect(state0.storedBytes).toBeLessThan(BS + 8192);
    writeAt(image, 3 * BS, Buffer.alloc(BS));
    const result = await snapshotArchive(archive);
    expect(result.changed && result.state.changedBlocks).toBe(1);
    expect((await updateMeta(archive, 1)).meta.storedBlocks).toBe(0);
    const out = path.join(dir, 'r');
    await restoreArchive(archive, { stateId: 1 }, out);
    expect(sha256(out)).toBe(sha256(image));
    expect(fs.statSync(out).blocks * 512).toBeLessThan(BS);
  });

  it('stores identical blocks once, within an update and across updates', async () => {
    const dir = tempDir();
    const image = path.join(dir, 'disk.img');
    const archive = path.join(dir, 'a');
    const block = randomBytes(prng(6), BS);
    fs.writeFileSync(image, Buffer.concat(Array.from({ length: 100 }, () => block)));
    await initArchive(image, archive, { blockSize: BS });
    expect((await updateMeta(archive, 0)).meta.storedBlocks).toBe(1);
    // A copy of content the archive already holds adds no block data.
    const other = randomBytes(prng(8), BS);
    writeAt(image, 7 * BS, other);
    await snapshotArchive(archive);
    writeAt(image, 50 * BS, other);
    writeAt(image, 60 * BS, other);
    const result = await snapshotArchive(archive);
    expect(result.changed && result.state.changedBlocks).toBe(2);
    expect((await updateMeta(archive, 2)).meta.storedBlocks).toBe(0);
    await restoreArchive(archive, { stateId: 2 }, path.join(dir, 'r'));
    expect(sha256(path.join(dir, 'r'))).toBe(sha256(image));
  });

  it('rolls a target holding state j back to state k writing only the blocks that differ', async () => {
    const dir = tempDir();
    const image = path.join(dir, 'disk.img');
    const archive = path.join(dir, 'a');
    fs.writeFileSync(image, randomBytes(prng(10), 64 * BS));
    const original = sha256(image);
    await initArchive(image, archive, { blockSize: BS });
    for (const b of [2, 9, 30]) writeAt(image, b * BS + 17, randomBytes(prng(b), 100));
    await snapshotArchive(archive);
    // Roll the primary itself back to state 0: three blocks differ.
    const report = await restoreArchive(archive, { stateId: 0 }, image, { rollback: true });
    expect(report.blocksWritten).toBe(3);
    expect(sha256(image)).toBe(original);
    // Rolling forward again from state 0 to state 1 writes the same three blocks.
    const again = await restoreArchive(archive, { stateId: 1 }, image, { rollback: true });
    expect(again.blocksWritten).toBe(3);
    const noop = await restoreArchive(archive, { stateId: 1 }, image, { rollback: true });
    expect(noop.blocksWritten).toBe(0);
  });

  it('rebuilds the catalog from the update files alone, and survives a destroyed catalog', async () => {
    const dir = tempDir();
    const image = path.join(dir, 'disk.img');
    const archive = path.join(dir, 'a');
    fs.writeFileSync(image, randomBytes(prng(11), 64 * BS));
    await initArchive(image, archive, { blockSize: BS });
    writeAt(image, 0, randomBytes(prng(12), 3 * BS));
    await snapshotArchive(archive);
    const states = await listStates(archive);
    fs.rmSync(path.join(archive, 'catalog.sqlite'));
    expect((await rebuildCatalog(archive)).states).toBe(2);
    expect(await listStates(archive)).toEqual(states);
    fs.writeFileSync(path.join(archive, 'catalog.sqlite'), 'not a database at all');
    // Readers fall back to an index built in memory; the next writer rebuilds the file.
    expect(await listStates(archive)).toEqual(states);
    writeAt(image, 5 * BS, randomBytes(prng(13), 10));
    const next = await snapshotArchive(archive);
    expect(next.changed && next.state.id).toBe(2);
    await restoreArchive(archive, { stateId: 1 }, path.join(dir, 'r'));
    expect(
      fs
        .readFileSync(path.join(dir, 'r'))
        .subarray(0, 3 * BS)
        .equals(randomBytes(prng(12), 3 * BS)),
    ).toBe(true);
  });

  it('never trusts a damaged map cache: a snapshot after tampering still records exactly what changed', async () => {
    const dir = tempDir();
    const image = path.join(dir, 'disk.img');
    const archive = path.join(dir, 'a');
    fs.writeFileSync(image, randomBytes(prng(21), 64 * BS));
    await initArchive(image, archive, { blockSize: BS });
    const cache = path.join(archive, 'latest.map');
    expect(fs.existsSync(cache)).toBe(true);
    // Scribble over hashes and scan hashes alike (a torn write, a bad sector, a bug).
    const bytes = fs.readFileSync(cache);
    for (let at = 64; at < bytes.length; at += 97) bytes[at]! ^= 0xff;
    fs.writeFileSync(cache, bytes);
    writeAt(image, 33 * BS + 5, randomBytes(prng(22), 10));
    const result = await snapshotArchive(archive);
    expect(result.changed && result.state.changedBlocks).toBe(1);
    await restoreArchive(archive, { stateId: 1 }, path.join(dir, 'r'));
    expect(sha256(path.join(dir, 'r'))).toBe(sha256(image));
    // The cache was rewritten whole and is trusted again: a snapshot with no change finds none.
    expect((await snapshotArchive(archive)).changed).toBe(false);
  });
});
