import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { TidemarkError } from '../../../shared/errors.js';
import type { VolumeRestoreReport } from '../../../shared/states.js';
import type { Archive } from '../archive.js';
import { BlockCodec } from '../block-codec.js';
import { HASH_BYTES, hashBlock } from '../block-hash.js';
import type { BlobLocation } from '../catalog.js';
import { RECORD_HEADER_BYTES } from '../format/update-format.js';
import { resolveState, type StateSelector } from '../restore.js';
import { TEMP_MARK } from '../storage/folder-store.js';
import { FileBlockReader } from './file-blocks.js';
import { loadVolumeTree } from './tree-loader.js';
import { comparePaths, displayPath, volumeStateHash, type VolumeEntry } from './volume-entry.js';
import type { VolumeTree } from './volume-tree.js';

export interface VolumeRestoreOptions {
  /** A file or folder of the state (relative to the tree, or an absolute path inside it). */
  path?: string;
  /**
   * Several files or folders of the state, restored in one pass: the target is then a folder in
   * which each keeps its place in the tree (its parent folders are made as recorded). One path
   * here is the same as `path`.
   */
  paths?: string[];
  /** Allow writing into an existing folder or over the protected tree itself. */
  force?: boolean;
  /** Bytes of files written so far, of all; throwing from it cancels the restore. */
  onProgress?: (done: number, total: number) => void;
  /**
   * Blocks the archive lacks may be read from the same file of the live protected folder, taken
   * only when their content hash is the state's (a restore from the local cache while the
   * secondary, which holds them, is away). Never used when the target overlaps the folder.
   */
  primaryFallback?: boolean;
}

/** Restored and recorded mtimes may differ by this much: utimes takes seconds as a double. */
const MTIME_SLACK_NS = 2000n;
const WRITE_BYTES = 8 << 20;

/**
 * Restores a whole state, or one file or folder of it, to `targetPath` (which becomes the
 * restored tree's root, or the restored file) with modes, times, symlink targets, owners (as
 * root) and hard links. A new target is built under a temporary name and renamed into place only
 * once every file has been read back and matched its recorded content hash, and a whole tree the
 * recorded state hash. The protected tree itself, or an existing folder, is written only with
 * `force`.
 */
export async function restoreVolumeState(
  archive: Archive,
  selector: StateSelector,
  targetPath: string,
  options: VolumeRestoreOptions = {},
): Promise<VolumeRestoreReport> {
  const state = resolveState(archive, selector);
  const tree = await loadVolumeTree(archive, state.id);
  const root = archive.manifest.primary.path;
  const keys = chosenKeys(root, options);
  for (const k of keys)
    if (k !== '' && !tree.get(k))
      throw new TidemarkError('state.not-found', `${displayPath(k)} is not in state ${state.id}`);
  const several = keys.length > 1;
  const key = several ? '' : (keys[0] ?? '');
  const chosen = key === '' ? null : tree.get(key);
  const entries = several ? entriesOfSeveral(tree, keys) : tree.under(key);
  const target = path.resolve(targetPath);
  checkTarget(target, root, options.force === true);
  const exists = fs.existsSync(target);
  const build = exists
    ? target
    : `${target}${TEMP_MARK}${process.pid}-${randomBytes(6).toString('hex')}`;
  const report: VolumeRestoreReport = {
    state: state.id,
    target,
    path: displayPath(key),
    ...(several ? { paths: keys.map(displayPath) } : {}),
    files: 0,
    dirs: 0,
    symlinks: 0,
    bytesWritten: 0,
    skipped: [],
    stateHash: state.stateHash,
    verified: true,
  };
  const outOf = (e: VolumeEntry): Buffer => {
    const suffix = key === '' ? `/${e.path}` : e.path.slice(key.length);
    return Buffer.concat([Buffer.from(build), Buffer.from(suffix, 'latin1')]);
  };
  try {
    fs.mkdirSync(path.dirname(target), { recursive: true });
    if (!chosen || chosen.type === 'dir') fs.mkdirSync(build, { recursive: true });
    const fallback =
      options.primaryFallback === true && !overlaps(target, root) ? Buffer.from(root) : null;
    const written = await writeEntries(
      archive,
      entries,
      outOf,
      report,
      fallback,
      options.onProgress,
    );
    setMetadata(entries, outOf, written);
    // One syncfs for the whole tree instead of an fsync per file (thousands of small files).
    spawnSync('sync', ['-f', build]);
    const whole = key === '' && !several;
    await proveRestored(archive, entries, outOf, written, whole ? state.stateHash : null);
    if (!exists) fs.renameSync(build, target);
  } catch (err) {
    if (!exists) fs.rmSync(build, { recursive: true, force: true });
    if (err instanceof TidemarkError) throw err;
    throw new TidemarkError(
      'restore.target-unwritable',
      `cannot restore to ${target}: ${(err as Error).message}`,
      { cause: err },
    );
  }
  return report;
}

/**
 * The tree paths asked for, without repeats and without any that lies inside another one asked
 * for (it is restored with it); [''] stands for the whole tree, [] when nothing was named.
 */
function chosenKeys(root: string, options: VolumeRestoreOptions): string[] {
  const given = [...(options.path !== undefined ? [options.path] : []), ...(options.paths ?? [])];
  const keys = [...new Set(given.map((p) => treeKey(root, p)))].sort(comparePaths);
  if (keys.includes('')) return [''];
  return keys.filter((k, i) => !keys.slice(0, i).some((outer) => k.startsWith(`${outer}/`)));
}

/** The chosen subtrees and the folders above them, parents first (byte order of paths). */
function entriesOfSeveral(tree: VolumeTree, keys: string[]): VolumeEntry[] {
  const picked = new Map<string, VolumeEntry>();
  for (const k of keys) {
    for (let at = k.indexOf('/'); at > 0; at = k.indexOf('/', at + 1)) {
      const parent = tree.get(k.slice(0, at));
      if (parent) picked.set(parent.path, parent);
    }
    for (const e of tree.under(k)) picked.set(e.path, e);
  }
  return [...picked.values()].sort((a, b) => comparePaths(a.path, b.path));
}

/** A user's path (absolute inside the tree, or relative to it) as a tree path. */
function treeKey(root: string, p: string): string {
  let rel = p;
  if (path.isAbsolute(p)) {
    rel = path.relative(root, p);
    if (rel.startsWith('..') || path.isAbsolute(rel))
      throw new TidemarkError('usage', `${p} does not lie inside the protected folder ${root}`);
  }
  rel = path.posix.normalize(rel.split(path.sep).join('/')).replace(/^\.?\/+|\/+$/g, '');
  if (rel === '.') rel = '';
  if (rel.startsWith('../')) throw new TidemarkError('usage', `--path ${p} leaves the tree`);
  return Buffer.from(rel, 'utf8').toString('latin1');
}

/** `a` is `b` or lies inside it. */
function inside(a: string, b: string): boolean {
  return a === b || a.startsWith(b + path.sep);
}

/** One of the two is the other or lies inside it. */
function overlaps(a: string, b: string): boolean {
  return inside(a, b) || inside(b, a);
}

function checkTarget(target: string, root: string, force: boolean): void {
  if (overlaps(target, root) && !force) {
    throw new TidemarkError(
      'restore.target-is-primary',
      `${target} ${target === root ? 'is' : inside(target, root) ? 'lies inside' : 'holds'} the protected folder ${root}: choose another place, or add --force to write over live data`,
    );
  }
  if (!fs.existsSync(target) || force) return;
  const st = fs.statSync(target);
  if (!st.isDirectory() || fs.readdirSync(target).length > 0) {
    throw new TidemarkError(
      'restore.target-exists',
      `${target} already exists${st.isDirectory() ? ' and is not empty' : ''}: choose a new place, or add --force to write into it`,
    );
  }
}

/** What was written for each entry: nothing for a skipped one, the link source for a hard link. */
type Written = Map<string, 'made' | 'skipped'>;

async function writeEntries(
  archive: Archive,
  entries: VolumeEntry[],
  outOf: (e: VolumeEntry) => Buffer,
  report: VolumeRestoreReport,
  fallbackRoot: Buffer | null,
  onProgress?: (done: number, total: number) => void,
): Promise<Written> {
  const written: Written = new Map();
  let total = 0;
  for (const e of entries) if (e.type === 'file') total += e.size;
  const { blobs, complete } = locateBlocks(archive, entries);
  // A block found nowhere is said before anything is written or removed (a forced restore
  // over existing files must not delete one it then cannot write).
  if (!complete && !fallbackRoot) {
    const lacking = entries.find((e) => missingBlock(e, blobs));
    if (lacking)
      throw new TidemarkError(
        'archive.corrupt',
        `a block of ${displayPath(lacking.path)} is missing from the archive`,
      );
  }
  const fetcher = new BlockFetcher(archive, blobs, fallbackRoot);
  const links = new Map<string, Buffer>();
  const isRoot = process.getuid?.() === 0;
  for (const e of entries) {
    const out = outOf(e);
    if (e.type !== 'dir') fs.rmSync(out, { force: true });
    switch (e.type) {
      case 'dir':
        if (!fs.existsSync(out)) fs.mkdirSync(out, { mode: 0o700 });
        report.dirs++;
        break;
      case 'file': {
        const linkKey = e.nlink > 1 ? `${e.ino}:${(e.contentHash as Buffer).toString('hex')}` : '';
        const first = linkKey ? links.get(linkKey) : undefined;
        if (first) fs.linkSync(first, out);
        else {
          report.bytesWritten += await fetcher.writeFile(out, e);
          if (linkKey) links.set(linkKey, out);
        }
        report.files++;
        onProgress?.(report.bytesWritten, total);
        break;
      }
      case 'symlink':
        fs.symlinkSync(Buffer.from(e.target ?? '', 'latin1'), out);
        report.symlinks++;
        break;
      case 'fifo':
      case 'char-device':
      case 'block-device': {
        const why = makeSpecial(e, out, isRoot);
        if (why) {
          report.skipped.push({ path: displayPath(e.path), reason: why });
          written.set(e.path, 'skipped');
          continue;
        }
        break;
      }
      case 'socket':
        report.skipped.push({
          path: displayPath(e.path),
          reason: 'a socket cannot be restored (its program makes it)',
        });
        written.set(e.path, 'skipped');
        continue;
    }
    written.set(e.path, 'made');
  }
  return written;
}

function makeSpecial(e: VolumeEntry, out: Buffer, isRoot: boolean): string | undefined {
  const name = out.toString('utf8');
  if (!Buffer.from(name, 'utf8').equals(out))
    return 'its name is not UTF-8, which mkfifo and mknod cannot take';
  if (e.type === 'fifo') {
    const r = spawnSync('mkfifo', [name]);
    return r.status === 0 ? undefined : `mkfifo failed: ${r.stderr?.toString().trim()}`;
  }
  if (!isRoot) return 'device nodes are made only when restoring as root';
  const major = Number((e.rdev >> 8n) & 0xfffn);
  const minor = Number((e.rdev & 0xffn) | ((e.rdev >> 12n) & 0xfff00n));
  const r = spawnSync('mknod', [
    name,
    e.type === 'char-device' ? 'c' : 'b',
    String(major),
    String(minor),
  ]);
  return r.status === 0 ? undefined : `mknod failed: ${r.stderr?.toString().trim()}`;
}

/** Modes, owners and times, deepest first: writing into a folder changes its mtime. */
function setMetadata(
  entries: VolumeEntry[],
  outOf: (e: VolumeEntry) => Buffer,
  written: Written,
): void {
  const isRoot = process.getuid?.() === 0;
  for (let i = entries.length - 1; i >= 0; i--) {
    const e = entries[i] as VolumeEntry;
    if (written.get(e.path) !== 'made') continue;
    const out = outOf(e);
    if (isRoot) fs.lchownSync(out, e.uid, e.gid);
    if (e.type !== 'symlink') fs.chmodSync(out, e.mode);
    const seconds = Number(e.mtimeNs) / 1e9;
    fs.lutimesSync(out, seconds, seconds);
  }
}

/** Where every block of `entries` is stored; `complete` unless some block is found nowhere. */
function locateBlocks(
  archive: Archive,
  entries: VolumeEntry[],
): { blobs: Map<string, BlobLocation>; complete: boolean } {
  const unique = new Map<string, Buffer>();
  for (const e of entries) {
    if (!e.blocks) continue;
    for (let at = 0; at < e.blocks.length; at += HASH_BYTES) {
      const h = e.blocks.subarray(at, at + HASH_BYTES);
      const k = h.toString('latin1');
      if (!unique.has(k)) unique.set(k, h);
    }
  }
  const blobs = archive.catalog.findBlobs([...unique.values()]);
  return { blobs, complete: blobs.size === unique.size };
}

/** Whether a block of the entry is found nowhere (only asked once some block is missing). */
function missingBlock(e: VolumeEntry, blobs: Map<string, BlobLocation>): boolean {
  if (!e.blocks) return false;
  for (let at = 0; at < e.blocks.length; at += HASH_BYTES)
    if (!blobs.has(e.blocks.subarray(at, at + HASH_BYTES).toString('hex'))) return true;
  return false;
}

/** Fetches stored blocks, checks each against its content address, and writes files from them. */
class BlockFetcher {
  private readonly codec: BlockCodec;
  private readonly block: Buffer;
  private readonly out = Buffer.allocUnsafe(WRITE_BYTES);
  /**
   * The live copy of the file being written, which a missing block may come from instead: opened
   * on its first missing block (null: it could not be), closed when the file is written.
   */
  private liveFd: number | null | undefined = undefined;

  constructor(
    private readonly archive: Archive,
    private readonly blobs: Map<string, BlobLocation>,
    private readonly fallbackRoot: Buffer | null = null,
  ) {
    this.codec = new BlockCodec(archive.manifest.blockSize);
    this.block = Buffer.allocUnsafe(archive.manifest.blockSize);
  }

  async writeFile(out: Buffer, e: VolumeEntry): Promise<number> {
    const fd = fs.openSync(out, 'wx', 0o600);
    let used = 0;
    let position = 0;
    try {
      const blocks = e.blocks as Buffer;
      for (let at = 0; at < blocks.length; at += HASH_BYTES) {
        const hash = blocks.subarray(at, at + HASH_BYTES);
        const data = await this.fetch(hash, e, at / HASH_BYTES);
        if (used + data.length > this.out.length) {
          fs.writeSync(fd, this.out, 0, used, position);
          position += used;
          used = 0;
        }
        data.copy(this.out, used);
        used += data.length;
      }
      if (used > 0) fs.writeSync(fd, this.out, 0, used, position);
      position += used;
    } finally {
      fs.closeSync(fd);
      if (typeof this.liveFd === 'number') fs.closeSync(this.liveFd);
      this.liveFd = undefined;
    }
    return position;
  }

  private fromLive(hash: Buffer, e: VolumeEntry, index: number): Buffer | null {
    if (!this.fallbackRoot) return null;
    if (this.liveFd === undefined) {
      const file = Buffer.concat([this.fallbackRoot, Buffer.from(`/${e.path}`, 'latin1')]);
      try {
        this.liveFd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
      } catch {
        this.liveFd = null;
      }
    }
    if (this.liveFd === null) return null;
    const blockSize = this.archive.manifest.blockSize;
    return readLiveBlock(this.liveFd, index, e.size, blockSize, hash, this.block);
  }

  private async fetch(hash: Buffer, e: VolumeEntry, index: number): Promise<Buffer> {
    const where = this.blobs.get(hash.toString('hex'));
    if (!where) {
      const live = this.fromLive(hash, e, index);
      if (live) return live;
      throw new TidemarkError(
        'archive.corrupt',
        `a block of ${displayPath(e.path)} is missing from the archive${this.fallbackRoot ? ', and the live file no longer holds it' : ''}`,
      );
    }
    const stored = await this.archive.store.read(
      where.update,
      where.offset + RECORD_HEADER_BYTES,
      where.storedLength,
    );
    const data = this.codec.decompress(
      where.codec,
      stored,
      this.block,
      where.rawLength,
      where.update,
    );
    if (!hashBlock(data).equals(hash))
      throw new TidemarkError(
        'archive.corrupt',
        `${where.update}: damaged block of ${displayPath(e.path)} (run tidemark verify)`,
      );
    return data;
  }
}

/**
 * Block `index` of the file's live copy in the protected folder, if its content hash is still
 * the state's; null otherwise (changed, gone, unreadable).
 */
function readLiveBlock(
  fd: number,
  index: number,
  size: number,
  blockSize: number,
  hash: Buffer,
  into: Buffer,
): Buffer | null {
  const want = Math.min(blockSize, size - index * blockSize);
  if (want <= 0) return null;
  let done = 0;
  while (done < want) {
    const n = fs.readSync(fd, into, done, want - done, index * blockSize + done);
    if (n === 0) return null;
    done += n;
  }
  const data = into.subarray(0, want);
  return hashBlock(data).equals(hash) ? data : null;
}

/**
 * Reads back what was restored: every file's content hash, every entry's type, mode, size, target
 * and mtime must be as recorded; for a whole tree the state hash computed from what is on disk
 * must be the recorded one.
 */
async function proveRestored(
  archive: Archive,
  entries: VolumeEntry[],
  outOf: (e: VolumeEntry) => Buffer,
  written: Written,
  stateHash: string | null,
): Promise<void> {
  const reader = new FileBlockReader(archive.manifest.blockSize, null);
  const found: VolumeEntry[] = [];
  for (const e of entries) {
    if (written.get(e.path) !== 'made') {
      found.push(e);
      continue;
    }
    const out = outOf(e);
    const st = fs.lstatSync(out, { bigint: true });
    const back: VolumeEntry = {
      ...e,
      mode: Number(st.mode & 0o7777n),
      size: e.type === 'dir' ? 0 : Number(st.size),
    };
    if (e.type === 'symlink')
      back.target = fs.readlinkSync(out, { encoding: 'buffer' }).toString('latin1');
    if (e.type === 'file') {
      const content = await reader.read(out);
      if (content === 'not-a-file') throw mismatch(e, 'is another type');
      back.contentHash = content.contentHash;
      if (!content.contentHash.equals(e.contentHash as Buffer))
        throw mismatch(e, 'has other content');
    }
    if (back.mode !== e.mode && e.type !== 'symlink') throw mismatch(e, 'has another mode');
    if (back.size !== e.size && e.type !== 'symlink') throw mismatch(e, 'has another size');
    if (back.target !== e.target) throw mismatch(e, 'points elsewhere');
    const drift = st.mtimeNs - e.mtimeNs;
    if (drift > MTIME_SLACK_NS || drift < -MTIME_SLACK_NS) throw mismatch(e, 'has another mtime');
    if (e.type === 'symlink') back.mode = e.mode;
    found.push(back);
  }
  if (stateHash !== null && volumeStateHash(found) !== stateHash) {
    throw new TidemarkError('restore.mismatch', 'the restored tree does not match the state hash');
  }
}

function mismatch(e: VolumeEntry, what: string): TidemarkError {
  return new TidemarkError(
    'restore.mismatch',
    `restored ${displayPath(e.path)} ${what} than the state records`,
  );
}
