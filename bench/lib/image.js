// The test primary: an ext4 image filled with real system files, changed between intervals by
// loop-mounting it and writing, renaming and deleting files (seeded, so every run is the same).
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { detachLoopSync, onCleanup, unmountSync } from './cleanup.js';
import { Rng } from './prng.js';
import { run } from './proc.js';

const SOURCE_ROOTS = [
  '/usr/share',
  '/usr/lib',
  '/usr/libexec',
  '/usr/bin',
  '/usr/sbin',
  '/usr/include',
];

/**
 * Copies real system files, in sorted order, into `dir` until `budget` bytes: documents, locale
 * data, icons, shared libraries, executables. Symlinks are kept as links. Returns bytes and files.
 */
export async function buildSource(dir, budget) {
  let bytes = 0;
  let files = 0;
  const copies = [];
  const flush = async () => {
    await Promise.all(copies.splice(0));
  };
  const walk = async (src, dst) => {
    let entries;
    try {
      entries = (await fsp.readdir(src, { withFileTypes: true })).sort((a, b) =>
        a.name < b.name ? -1 : a.name > b.name ? 1 : 0,
      );
    } catch {
      return;
    }
    await fsp.mkdir(dst, { recursive: true });
    for (const e of entries) {
      if (bytes >= budget) return;
      const s = path.join(src, e.name);
      const d = path.join(dst, e.name);
      if (e.isDirectory()) {
        // Never copy an earlier bench's (or a test's) leftovers, nor node's own tree.
        if (s.includes('/node_modules') || s.startsWith('/usr/lib/node')) continue;
        await walk(s, d);
      } else if (e.isSymbolicLink()) {
        try {
          await fsp.symlink(await fsp.readlink(s), d);
        } catch {
          // skip
        }
      } else if (e.isFile()) {
        let st;
        try {
          st = await fsp.stat(s);
        } catch {
          continue;
        }
        if (st.size > 64 << 20) continue;
        bytes += st.size;
        files++;
        copies.push(fsp.copyFile(s, d).catch(() => undefined));
        if (copies.length >= 32) await flush();
      }
    }
  };
  for (const root of SOURCE_ROOTS) {
    if (bytes >= budget) break;
    await walk(root, path.join(dir, root.replaceAll('/', '_').slice(1)));
  }
  await flush();
  return { bytes, files };
}

export async function makeExt4(image, sourceDir, size) {
  await run('mke2fs', [
    '-q',
    '-t',
    'ext4',
    '-F',
    '-E',
    'lazy_itable_init=0,lazy_journal_init=0',
    '-d',
    sourceDir,
    image,
    size,
  ]);
}

/** Attaches `image` to a free loop device (by name, for cleanup) and mounts it at `mnt`. */
export async function mountImage(image, mnt, { readOnly = false } = {}) {
  const args = ['--find', '--show', ...(readOnly ? ['--read-only'] : []), image];
  const device = (await run('losetup', args)).stdout.trim();
  if (!/^\/dev\/loop\d+$/.test(device))
    throw new Error(`losetup gave an unexpected device: ${device}`);
  const detach = onCleanup(`loop device ${device}`, () => detachLoopSync(device));
  fs.mkdirSync(mnt, { recursive: true });
  try {
    await run('mount', readOnly ? ['-o', 'ro,noload', device, mnt] : [device, mnt]);
  } catch (err) {
    detach();
    throw err;
  }
  const unmount = onCleanup(`mount ${mnt}`, () => unmountSync(mnt));
  return {
    device,
    /** Unmounts and detaches now (the image is quiescent afterwards). */
    release: async () => {
      await run('sync', []);
      unmount();
      detach();
    },
  };
}

/** Every regular file under `root`, sorted by path, with its size. */
async function listFiles(root) {
  const files = [];
  const dirs = [];
  const walk = async (dir) => {
    const entries = (await fsp.readdir(dir, { withFileTypes: true })).sort((a, b) =>
      a.name < b.name ? -1 : a.name > b.name ? 1 : 0,
    );
    for (const e of entries) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) {
        if (p === path.join(root, 'lost+found')) continue;
        dirs.push(p);
        await walk(p);
      } else if (e.isFile()) {
        files.push({ path: p, size: (await fsp.stat(p)).size });
      }
    }
  };
  await walk(root);
  return { files, dirs };
}

/**
 * One interval of change on the mounted filesystem, about `budget` bytes written in all:
 * new files, in-place rewrites of parts of files, whole-file replacements (write + rename, as
 * package managers do), appends, renames/moves, deletes, and one small file rewritten 50 times.
 * Returns what it did, in bytes and counts.
 */
export async function mutate(mnt, interval, seed, budget, { maxDeletes = 400 } = {}) {
  const rng = new Rng(seed * 1000 + interval);
  const { files, dirs } = await listFiles(mnt);
  const order = rng.shuffled(files.map((_, i) => i));
  const used = new Set();
  const take = (filter) => {
    for (const i of order) {
      if (used.has(i)) continue;
      if (!filter(files[i])) continue;
      used.add(i);
      return files[i];
    }
    return null;
  };
  const did = {
    written: 0,
    newFiles: 0,
    rewrites: 0,
    replaced: 0,
    appends: 0,
    renames: 0,
    deletes: 0,
    deletedBytes: 0,
    hotWrites: 0,
  };

  // 1. In-place rewrites of a range of an existing file (databases, VM images, documents): 30 %.
  for (let left = budget * 0.3; left > 0;) {
    const f = take((x) => x.size >= 64 << 10);
    if (!f) break;
    const len = Math.min(rng.logInt(4 << 10, 512 << 10), f.size);
    const at = rng.int(0, Math.floor((f.size - len) / 512)) * 512;
    const fh = await fsp.open(f.path, 'r+');
    await fh.write(rng.content(len), 0, len, at);
    await fh.close();
    did.rewrites++;
    did.written += len;
    left -= len;
  }

  // 2. Whole-file replacement with a new version (new file then rename over the old): 20 %.
  for (let left = budget * 0.2; left > 0;) {
    const f = take((x) => x.size >= 16 << 10 && x.size <= 4 << 20);
    if (!f) break;
    const old = await fsp.readFile(f.path);
    // A new version: most of the old content with some edits and some growth.
    const edits = rng.int(1, 4);
    for (let e = 0; e < edits; e++) {
      const len = Math.min(old.length, rng.logInt(256, 32 << 10));
      rng.content(len).copy(old, rng.int(0, old.length - len));
    }
    const grown = Buffer.concat([old, rng.content(rng.int(0, Math.floor(old.length / 10)))]);
    const tmp = `${f.path}.tmp-bench`;
    await fsp.writeFile(tmp, grown);
    await fsp.rename(tmp, f.path);
    did.replaced++;
    did.written += grown.length;
    left -= grown.length;
  }

  // 3. Appends (logs, mail boxes): 10 %.
  for (let left = budget * 0.1; left > 0;) {
    const f = take(() => true);
    if (!f) break;
    const len = rng.logInt(1 << 10, 256 << 10);
    await fsp.appendFile(f.path, rng.text(len));
    did.appends++;
    did.written += len;
    left -= len;
  }

  // 4. New files in a new folder and scattered in existing ones: 40 %.
  const fresh = path.join(mnt, `bench-new-${interval}`);
  await fsp.mkdir(fresh);
  for (let left = budget * 0.4, n = 0; left > 0; n++) {
    const len = rng.logInt(2 << 10, 4 << 20);
    const dir = rng.next() < 0.5 ? fresh : rng.pick(dirs);
    await fsp.writeFile(path.join(dir, `new-${interval}-${n}.dat`), rng.content(len));
    did.newFiles++;
    did.written += len;
    left -= len;
  }

  // 5. Renames and moves to another folder.
  for (let n = 0; n < 60; n++) {
    const f = take(() => true);
    if (!f) break;
    const toDir = rng.next() < 0.5 ? path.dirname(f.path) : rng.pick(dirs);
    await fsp.rename(f.path, path.join(toDir, `${path.basename(f.path)}.renamed-${interval}-${n}`));
    did.renames++;
  }

  // 6. Deletes: about a quarter of the budget's worth of files disappears (files of 8 KiB and
  // more, at most `maxDeletes` of them: a user deleting documents and downloads, not a purge of
  // thousands of tiny files, which would turn most of the change into inode-table churn).
  for (let left = budget * 0.25; left > 0 && did.deletes < maxDeletes;) {
    const f = take((x) => x.size >= 8 << 10);
    if (!f) break;
    await fsp.rm(f.path);
    did.deletes++;
    did.deletedBytes += f.size;
    left -= f.size;
  }

  // 7. One small file rewritten 50 times (a settings file saved over and over), fsynced each time.
  const hot = path.join(mnt, 'bench-hot.conf');
  for (let n = 0; n < 50; n++) {
    const fh = await fsp.open(hot, 'w');
    await fh.write(rng.text(rng.int(2000, 6000)));
    await fh.sync();
    await fh.close();
    did.hotWrites++;
  }
  return did;
}

/**
 * Where the ext4 filesystem in `image` keeps its journal and its metadata (inode tables, bitmaps,
 * superblocks and group descriptors), as byte ranges, to tell which part of a change is which.
 */
export async function ext4Layout(image) {
  const dump = (await run('dumpe2fs', [image])).stdout;
  const blockSize = Number(/Block size:\s+(\d+)/.exec(dump)?.[1] ?? 4096);
  const ranges = [];
  for (const m of dump.matchAll(/(Inode table|Block bitmap|Inode bitmap) at (\d+)(?:-(\d+))?/g)) {
    ranges.push({
      kind: m[1] === 'Inode table' ? 'inodeTables' : 'otherMeta',
      start: +m[2],
      end: +(m[3] ?? m[2]),
    });
  }
  for (const m of dump.matchAll(/superblock at (\d+), Group descriptors at (\d+)-(\d+)/g)) {
    ranges.push({ kind: 'otherMeta', start: +m[1], end: +m[3] });
  }
  const journal = (await run('debugfs', ['-R', 'stat <8>', image])).stdout;
  for (const m of journal.matchAll(/\((\d+)(?:-(\d+))?\):(\d+)(?:-(\d+))?/g)) {
    ranges.push({ kind: 'journal', start: +m[3], end: +(m[4] ?? m[3]) });
  }
  return ranges
    .map((r) => ({ kind: r.kind, start: r.start * blockSize, end: (r.end + 1) * blockSize }))
    .sort((a, b) => a.start - b.start);
}

/**
 * Bytes that differ between two equally long images, counted in 4 KiB pages, split by where
 * they lie in the filesystem when a layout is given (journal, inode tables, other metadata, and
 * the rest: file data and directories).
 */
export async function differingBytes(a, b, layout = []) {
  const page = 4096;
  const chunk = 8 << 20;
  const fa = await fsp.open(a, 'r');
  const fb = await fsp.open(b, 'r');
  const ba = Buffer.allocUnsafe(chunk);
  const bb = Buffer.allocUnsafe(chunk);
  const result = { total: 0, journal: 0, inodeTables: 0, otherMeta: 0, data: 0 };
  const kindAt = (offset) => {
    for (const r of layout) {
      if (r.start > offset) break;
      if (offset < r.end) return r.kind;
    }
    return 'data';
  };
  try {
    for (let pos = 0; ; pos += chunk) {
      const [{ bytesRead: ra }, { bytesRead: rb }] = await Promise.all([
        fa.read(ba, 0, chunk, pos),
        fb.read(bb, 0, chunk, pos),
      ]);
      const n = Math.max(ra, rb);
      if (n === 0) break;
      for (let off = 0; off < n; off += page) {
        const end = Math.min(off + page, n);
        if (ba.compare(bb, off, end, off, end) !== 0) {
          result.total += end - off;
          result[kindAt(pos + off)] += end - off;
        }
      }
    }
  } finally {
    await fa.close();
    await fb.close();
  }
  return result;
}

/** Writes `count` chunks of `chunkBytes` random bytes at seeded, 4 KiB-aligned offsets. */
export async function scatter(image, size, seed, count, chunkBytes) {
  const rng = new Rng(seed);
  const fh = await fsp.open(image, 'r+');
  try {
    for (let i = 0; i < count; i++) {
      const at = rng.int(0, Math.floor((size - chunkBytes) / 4096)) * 4096;
      await fh.write(rng.bytes(chunkBytes), 0, chunkBytes, at);
    }
    await fh.sync();
  } finally {
    await fh.close();
  }
}
