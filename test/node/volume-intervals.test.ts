/**
 * Volume mode on a real tree of thousands of files: a scripted series of intervals (create,
 * modify in place, append, truncate, rename, delete, chmod, symlink, type changes, copies), each
 * ended by a point; every state restores identical to a copy of the tree taken at its point.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Archive } from '../../src/main/engine/archive.js';
import { UpdateReader } from '../../src/main/engine/format/update-reader.js';
import {
  initVolumeArchive,
  listVolumeStates,
  snapshotVolume,
} from '../../src/main/engine/volume-engine.js';
import { tidemark, tidemarkJson } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';
import {
  copyTree,
  describeTree,
  prng,
  randomBytes,
  treeDifferences,
  writeAt,
} from '../helpers/tree.js';

const FILES = 2000;
const BIG = 8 << 20;

function buildTree(root: string, rand: (n: number) => number): string[] {
  const files: string[] = [];
  for (let d = 0; d < 40; d++) fs.mkdirSync(path.join(root, `d${d}`, 'inner'), { recursive: true });
  for (let i = 0; i < FILES; i++) {
    const rel = `d${i % 40}/${i % 3 === 0 ? 'inner/' : ''}f${i}.dat`;
    fs.writeFileSync(path.join(root, rel), randomBytes(rand, rand(8192)));
    files.push(rel);
  }
  fs.writeFileSync(path.join(root, 'big.bin'), randomBytes(rand, BIG));
  fs.symlinkSync('big.bin', path.join(root, 'big.link'));
  return files;
}

async function storedBlocksOf(archiveDir: string, id: number): Promise<number> {
  const archive = await Archive.open(archiveDir, { write: false });
  try {
    const reader = await UpdateReader.open(archive.store, archive.catalog.state(id)!.update);
    return reader.meta.storedBlocks;
  } finally {
    await archive.close();
  }
}

describe('volume mode: a scripted series of intervals', () => {
  it('every state restores identical to the tree at its point; changes cost what changed', async () => {
    const work = tempDir();
    const tree = path.join(work, 'tree');
    const arch = path.join(work, 'arch');
    const refs = path.join(work, 'refs');
    fs.mkdirSync(tree);
    fs.mkdirSync(refs);
    const rand = prng(7);
    let files = buildTree(tree, rand);
    const pick = (n: number): string[] => {
      const chosen = new Set<string>();
      while (chosen.size < n) chosen.add(files[rand(files.length)] as string);
      return [...chosen];
    };
    const at = (rel: string): string => path.join(tree, rel);

    const base = await initVolumeArchive(tree, arch, { useSnapshots: false });
    expect(base.state.id).toBe(0);
    expect(base.state.changedFiles).toBe(FILES + 40 * 2 + 2);
    copyTree(tree, path.join(refs, '0'));

    const intervals: Array<() => void> = [
      // 1: new files and a new folder; in-place rewrites that keep the size.
      () => {
        fs.mkdirSync(at('new/deep'), { recursive: true });
        for (let i = 0; i < 200; i++) {
          const rel = `new/${i % 2 ? 'deep/' : ''}n${i}.dat`;
          fs.writeFileSync(at(rel), randomBytes(rand, 1 + rand(20000)));
          files.push(rel);
        }
        for (const rel of pick(100)) {
          const size = fs.statSync(at(rel)).size;
          if (size > 0) writeAt(at(rel), rand(size), randomBytes(rand, 1));
        }
      },
      // 2: appends, truncations, and 1 MiB rewritten in the middle of the big file.
      () => {
        for (const rel of pick(100)) fs.appendFileSync(at(rel), randomBytes(rand, 1 + rand(3000)));
        for (const rel of pick(50))
          fs.truncateSync(at(rel), Math.floor(fs.statSync(at(rel)).size / 3));
        writeAt(at('big.bin'), 3 << 20, randomBytes(rand, 1 << 20));
      },
      // 3: renames of files and of a whole folder: no content is new.
      () => {
        for (const rel of pick(100)) {
          const to = `${path.dirname(rel)}/renamed-${path.basename(rel)}`;
          fs.renameSync(at(rel), at(to));
          files[files.indexOf(rel)] = to;
        }
        fs.renameSync(at('d5'), at('d5-moved'));
        files = files.map((f) => (f.startsWith('d5/') ? `d5-moved/${f.slice(3)}` : f));
        fs.renameSync(at('big.bin'), at('big-renamed.bin'));
        fs.symlinkSync('big-renamed.bin', at('big.link2'));
      },
      // 4: deletions (a folder with its content too) and mode changes.
      () => {
        for (const rel of pick(100)) {
          fs.rmSync(at(rel));
          files.splice(files.indexOf(rel), 1);
        }
        fs.rmSync(at('d7'), { recursive: true });
        files = files.filter((f) => !f.startsWith('d7/'));
        for (const rel of pick(100)) fs.chmodSync(at(rel), rand(2) ? 0o600 : 0o755);
        fs.chmodSync(at('d9'), 0o700);
      },
      // 5: symlinks made and retargeted, a file turned into a folder and back, a copy.
      () => {
        fs.rmSync(at('big.link'));
        fs.symlinkSync('../elsewhere/not-there', at('big.link'));
        fs.symlinkSync('d1', at('dir.link'));
        const f = files.pop() as string;
        fs.rmSync(at(f));
        fs.mkdirSync(at(f));
        fs.writeFileSync(at(`${f}/inside`), 'now a folder');
        fs.rmSync(at('d8'), { recursive: true });
        files = files.filter((x) => !x.startsWith('d8/'));
        fs.writeFileSync(at('d8'), 'now a file');
        fs.copyFileSync(at('big-renamed.bin'), at('big-copy.bin'));
      },
    ];
    for (let k = 1; k <= intervals.length; k++) {
      intervals[k - 1]!();
      const r = await snapshotVolume(arch, { useSnapshots: false });
      expect(r.changed, `interval ${k}`).toBe(true);
      if (r.changed) {
        expect(r.state.id).toBe(k);
        expect(r.state.consistency).toBe('quiescent');
      }
      copyTree(tree, path.join(refs, String(k)));
    }
    // Nothing changed: no state.
    expect((await snapshotVolume(arch, { useSnapshots: false })).changed).toBe(false);

    const states = await listVolumeStates(arch);
    expect(states.map((s) => s.id)).toEqual([0, 1, 2, 3, 4, 5]);
    // 2: the 1 MiB rewrite inside the 8 MiB file stores about 1 MiB (plus the small files' blocks).
    expect(states[2]!.storedBytes).toBeLessThan((1 << 20) + 100 * 12_000);
    // 3 and 5: renames and a copy of archived content add no block at all.
    expect(await storedBlocksOf(arch, 3)).toBe(0);
    expect(await storedBlocksOf(arch, 5)).toBe(2);
    expect(states[3]!.storedBytes).toBeLessThan(64 * 1024);
    // Each renamed file is one path removed and one added.
    expect(states[3]!.changedFiles).toBeGreaterThanOrEqual(200);

    // Every state restores identical to the copy taken at its point.
    for (const s of states) {
      const out = path.join(work, `restored-${s.id}`);
      const report = tidemarkJson<{ verified: boolean; files: number }>(
        'restore',
        arch,
        '--state',
        String(s.id),
        '--to',
        out,
      );
      expect(report.verified).toBe(true);
      const diffs = treeDifferences(describeTree(path.join(refs, String(s.id))), describeTree(out));
      expect(diffs.slice(0, 10), `state ${s.id}`).toEqual([]);
      fs.rmSync(out, { recursive: true });
    }
    const verify = tidemark('verify', arch, '--deep');
    expect(verify.stdout).toMatch(/^ok: 6 updates/);
    expect(verify.code).toBe(0);
  }, 300_000);
});
