/**
 * Invariant 7 of the design brief (section 3): bad input never corrupts anything. A wrong drive, a
 * full or read-only secondary, a foreign or newer-format archive each get one clear line on
 * stderr and a non-zero exit, and leave every byte of the archive and of the primary as it was.
 *
 * Everything runs through the real CLI on real files; the root-only cases use real loop devices
 * with real ext4 and tmpfs mounts, and clean up exactly what they made, by name.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import type { StateInfo, VerifyReport } from '../../src/shared/states.js';
import { CLI, tidemark, tidemarkJson, type CliResult } from '../helpers/cli.js';
import { rootSkipReason, sh } from '../helpers/root.js';
import { sha256, tempDir } from '../helpers/tmp.js';

const MiB = 1024 * 1024;
const BLOCK = 64 * 1024;
const rootReason = rootSkipReason();
const isRoot = process.getuid?.() === 0;

// ---------------------------------------------------------------------------------------------
// Helpers

/** Incompressible bytes straight from the kernel, so stored sizes are predictable. */
function urandom(length: number): Buffer {
  const out = Buffer.allocUnsafe(length);
  const fd = fs.openSync('/dev/urandom', 'r');
  try {
    let done = 0;
    while (done < length) done += fs.readSync(fd, out, done, length - done, null);
  } finally {
    fs.closeSync(fd);
  }
  return out;
}

function writeAt(file: string, offset: number, data: Buffer): void {
  const fd = fs.openSync(file, 'r+');
  try {
    fs.writeSync(fd, data, 0, data.length, offset);
  } finally {
    fs.closeSync(fd);
  }
}

/** Every entry under `dir` with the sha256 of each file: equal trees mean nothing was written. */
function tree(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (at: string): void => {
    for (const e of fs.readdirSync(at, { withFileTypes: true })) {
      const p = path.join(at, e.name);
      const rel = path.relative(dir, p);
      if (e.isDirectory()) {
        out[rel + '/'] = 'dir';
        walk(p);
      } else if (e.isFile()) {
        out[rel] = sha256(p);
      } else {
        out[rel] = 'other';
      }
    }
  };
  walk(dir);
  return out;
}

/** Exactly one line on stderr, starting with "tidemark: ", saying what `pattern` says. */
function expectRefused(r: CliResult, pattern: RegExp): void {
  const lines = r.stderr.split('\n').filter((l) => l.length > 0);
  const context = `exit ${r.code}, stderr: ${JSON.stringify(r.stderr)}`;
  expect(r.code, context).not.toBe(0);
  expect(lines, context).toHaveLength(1);
  expect(r.stderr, context).toBe(`${lines[0]}\n`);
  expect(lines[0], context).toMatch(/^tidemark: /);
  expect(lines[0], context).not.toMatch(/internal error/);
  expect(lines[0], context).toMatch(pattern);
}

function states(archive: string): StateInfo[] {
  return tidemarkJson<StateInfo[]>('states', archive);
}

function verifyOk(archive: string): void {
  const r = tidemark('verify', archive, '--json');
  expect(r.code, r.stderr).toBe(0);
  expect((JSON.parse(r.stdout) as VerifyReport).ok).toBe(true);
}

/** What must not change: the archive's files, its states, and the primary. */
interface Baseline {
  archive: string;
  primary: string;
  files: Record<string, string>;
  states: StateInfo[];
  primarySha: string;
}

function baseline(archive: string, primary: string): Baseline {
  return {
    archive,
    primary,
    files: tree(archive),
    states: states(archive),
    primarySha: sha256(primary),
  };
}

function expectUntouched(b: Baseline): void {
  expect(tree(b.archive), 'files of the archive').toEqual(b.files);
  expect(states(b.archive)).toEqual(b.states);
  verifyOk(b.archive);
  expect(sha256(b.primary), 'the primary').toBe(b.primarySha);
  // verify and states are readers: they must not have written anything either.
  expect(tree(b.archive)).toEqual(b.files);
}

/** A random primary image and its freshly initialised archive. */
function archived(size = 2 * MiB): { dir: string; primary: string; archive: string } {
  const dir = tempDir();
  const primary = path.join(dir, 'disk.img');
  const archive = path.join(dir, 'archive');
  fs.writeFileSync(primary, urandom(size));
  const r = tidemark('init', primary, archive, '--block-size', String(BLOCK));
  expect(r.code, r.stderr).toBe(0);
  return { dir, primary, archive };
}

function snapshotOk(archive: string): StateInfo {
  const result = tidemarkJson<{ changed: boolean; state: StateInfo }>('snapshot', archive);
  expect(result.changed).toBe(true);
  return result.state;
}

function incompleteFiles(dir: string): string[] {
  return Object.keys(tree(dir)).filter((p) => p.includes('incomplete'));
}

/** Runs the CLI as another user (root can read anything, nobody cannot). */
function tidemarkAs(uid: number, gid: number, ...args: string[]): CliResult {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', uid, gid });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

// Root-only plumbing: mounts and loop devices this file made, undone by name after each test.
const mounts: string[] = [];
const loops: string[] = [];
const rootDirs: string[] = [];

function rootDir(): string {
  // Not a tempDir(): that one is removed by a hook that might run before the mounts are undone.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tidemark-bad-input-'));
  rootDirs.push(dir);
  return dir;
}

function attachLoop(file: string): string {
  const device = sh('losetup', ['--find', '--show', file]).trim();
  expect(device).toMatch(/^\/dev\/loop\d+$/);
  loops.push(device);
  return device;
}

function mount(args: string[], mountPoint: string): void {
  fs.mkdirSync(mountPoint, { recursive: true });
  sh('mount', [...args, mountPoint]);
  mounts.push(mountPoint);
}

/** A fresh ext4 filesystem of `size` bytes on a loop device, mounted at `mountPoint`. */
function ext4(dir: string, size: number, name: string): { mountPoint: string; device: string } {
  const image = path.join(dir, `${name}.ext4`);
  fs.writeFileSync(image, '');
  fs.truncateSync(image, size);
  const device = attachLoop(image);
  // -m 0: no blocks reserved for root, so "full" means full for us too.
  sh('mkfs.ext4', ['-q', '-F', '-m', '0', device]);
  const mountPoint = path.join(dir, name);
  mount([device], mountPoint);
  return { mountPoint, device };
}

afterEach(() => {
  const errors: string[] = [];
  for (const m of mounts.splice(0).reverse()) {
    try {
      sh('umount', [m]);
    } catch (err) {
      errors.push(`umount ${m}: ${(err as Error).message}`);
    }
  }
  for (const l of loops.splice(0).reverse()) {
    try {
      sh('losetup', ['-d', l]);
    } catch (err) {
      errors.push(`losetup -d ${l}: ${(err as Error).message}`);
    }
  }
  // With a mount still in place, removing the folder would delete inside the mounted filesystem.
  if (errors.length > 0) throw new Error(`left in place, clean up by hand:\n${errors.join('\n')}`);
  for (const d of rootDirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------
// 1. The wrong primary

describe('a primary that cannot be backed up', () => {
  it('refuses a primary that does not exist, and creates no archive', () => {
    const dir = tempDir();
    const archive = path.join(dir, 'archive');
    const r = tidemark('init', path.join(dir, 'no-such-disk.img'), archive);
    expectRefused(r, /no-such-disk\.img does not exist/);
    expect(fs.existsSync(archive)).toBe(false);
  });

  it('takes a folder given as the primary as a volume (issue 3), not as a device', () => {
    const dir = tempDir();
    const folder = path.join(dir, 'photos');
    fs.mkdirSync(folder);
    fs.writeFileSync(path.join(folder, 'a.jpg'), 'not a disk');
    const archive = path.join(dir, 'archive');
    fs.mkdirSync(archive);
    expect(tidemark('init', folder, archive).code).toBe(0);
    const manifest = JSON.parse(fs.readFileSync(path.join(archive, 'tidemark.json'), 'utf8'));
    expect(manifest.primary.kind).toBe('volume');
    // Device options make no sense for a folder: the device path refuses them as before.
    expectRefused(
      tidemark('init', folder, path.join(dir, 'other'), '--rollback'),
      /Unknown option '--rollback'/,
    );
  });

  it('refuses a FIFO (no device to read), without blocking on it', () => {
    const dir = tempDir();
    const fifo = path.join(dir, 'pipe');
    sh('mkfifo', [fifo]);
    const archive = path.join(dir, 'archive');
    expectRefused(
      tidemark('init', fifo, archive),
      /pipe is neither a disk image nor a block device/,
    );
    expect(fs.existsSync(archive)).toBe(false);
  });

  it('refuses a primary it has no permission to read (chmod 000)', (ctx) => {
    const dir = tempDir();
    const primary = path.join(dir, 'disk.img');
    fs.writeFileSync(primary, urandom(256 * 1024));
    const sha = sha256(primary);
    fs.chmodSync(primary, 0o000);
    const archive = path.join(dir, 'archive');
    let r: CliResult;
    if (isRoot) {
      // Root reads anything: run the CLI as nobody, which really cannot.
      fs.chmodSync(dir, 0o755);
      const probe = tidemarkAs(65534, 65534, '--help');
      if (probe.code !== 0) {
        ctx.skip(
          `as root, the unreadable-file case runs the CLI as nobody, which cannot run it here: ${probe.stderr}`,
        );
        return;
      }
      r = tidemarkAs(65534, 65534, 'init', primary, archive);
    } else {
      r = tidemark('init', primary, archive, '--block-size', String(BLOCK));
    }
    fs.chmodSync(primary, 0o644);
    expectRefused(r, /no permission to read .*disk\.img/);
    expect(fs.existsSync(archive)).toBe(false);
    expect(sha256(primary)).toBe(sha);
  });
});

// ---------------------------------------------------------------------------------------------
// 2. init into the wrong folder

describe('init into a folder that is not free for it', () => {
  it('refuses a non-empty folder that holds no archive, and touches none of its files', () => {
    const dir = tempDir();
    const primary = path.join(dir, 'disk.img');
    fs.writeFileSync(primary, urandom(256 * 1024));
    const folder = path.join(dir, 'Documents');
    fs.mkdirSync(path.join(folder, 'taxes'), { recursive: true });
    fs.writeFileSync(path.join(folder, 'letter.txt'), 'Dear Sir,\n');
    fs.writeFileSync(path.join(folder, 'taxes', '2025.pdf'), urandom(10_000));
    const before = tree(folder);
    const sha = sha256(primary);
    expectRefused(
      tidemark('init', primary, folder),
      /Documents is not empty and holds no Tidemark archive/,
    );
    expect(tree(folder)).toEqual(before);
    expect(sha256(primary)).toBe(sha);
  });

  it('refuses an archive path that is a file, and leaves the file as it was', () => {
    const dir = tempDir();
    const primary = path.join(dir, 'disk.img');
    fs.writeFileSync(primary, urandom(256 * 1024));
    const file = path.join(dir, 'backup.zip');
    fs.writeFileSync(file, urandom(1000));
    const before = tree(dir);
    expectRefused(tidemark('init', primary, file), /backup\.zip is a file, not a folder/);
    expect(tree(dir)).toEqual(before);
  });

  it("refuses a folder holding another primary's archive", () => {
    const { dir, primary, archive } = archived();
    const other = path.join(dir, 'other.img');
    fs.writeFileSync(other, urandom(256 * 1024));
    const b = baseline(archive, primary);
    expectRefused(
      tidemark('init', other, archive),
      /holds the archive of another primary \(.*disk\.img\)/,
    );
    expectUntouched(b);
  });

  it('refuses init twice for the same primary', () => {
    const { primary, archive } = archived();
    const b = baseline(archive, primary);
    expectRefused(
      tidemark('init', primary, archive, '--block-size', String(BLOCK)),
      /already holds an archive of .*disk\.img: use `tidemark snapshot`/,
    );
    expectUntouched(b);
  });
});

// ---------------------------------------------------------------------------------------------
// 3. A folder that is not an archive

describe('commands on something that is not an archive', () => {
  it('refuses every command on a folder that is not an archive, and writes nothing there', () => {
    const dir = tempDir();
    const folder = path.join(dir, 'stuff');
    fs.mkdirSync(folder);
    fs.writeFileSync(path.join(folder, 'readme.txt'), 'hello');
    const before = tree(folder);
    const target = path.join(dir, 'restored.img');
    for (const args of [
      ['snapshot', folder],
      ['states', folder],
      ['verify', folder],
      ['restore', folder, '--state', '0', '--to', target],
      ['catalog', 'rebuild', folder],
    ]) {
      expectRefused(tidemark(...args), /stuff is not a Tidemark archive \(no tidemark\.json\)/);
      expect(tree(folder)).toEqual(before);
    }
    expect(fs.existsSync(target)).toBe(false);
  });

  it('refuses a snapshot of a folder that does not exist, and does not create it', () => {
    const dir = tempDir();
    const missing = path.join(dir, 'unplugged', 'archive');
    expectRefused(tidemark('snapshot', missing), /no archive at .*unplugged\/archive/);
    expect(fs.existsSync(path.join(dir, 'unplugged'))).toBe(false);
  });
});

describe('the command line itself', () => {
  it('answers --version and --help, and refuses an unknown command in one line', () => {
    const pkg = JSON.parse(
      fs.readFileSync(path.resolve(import.meta.dirname, '../../package.json'), 'utf8'),
    ) as { version: string };
    const version = tidemark('--version');
    expect(version.code).toBe(0);
    expect(version.stdout).toBe(`${pkg.version}\n`);
    const help = tidemark('--help');
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^usage: tidemark <command>/);
    expect(help.stdout).toContain('--version');
    expectRefused(tidemark('frobnicate'), /unknown command frobnicate/);
  });
});

// ---------------------------------------------------------------------------------------------
// 4. The primary changed size

describe('a primary whose size changed since init', () => {
  it('refuses the snapshot and records nothing', () => {
    const { primary, archive } = archived();
    fs.truncateSync(primary, 3 * MiB);
    const b = baseline(archive, primary);
    expectRefused(
      tidemark('snapshot', archive),
      /disk\.img is now 3145728 bytes but was 2097152 when the archive was made/,
    );
    expectUntouched(b);
  });
});

// ---------------------------------------------------------------------------------------------
// 5. Archives of a newer format

describe('an archive written by a newer Tidemark', () => {
  // Version 2 is an encrypted archive, 3 an encrypted extra secondary (docs/FORMAT.md): 4 is the
  // first this build cannot read.
  it('a manifest of version 4: every command says the archive is newer and to update Tidemark', () => {
    const { dir, primary, archive } = archived();
    const manifestFile = path.join(archive, 'tidemark.json');
    const original = fs.readFileSync(manifestFile, 'utf8');
    const manifest = JSON.parse(original) as { version: number };
    expect(manifest.version).toBe(1);
    const b = baseline(archive, primary);
    fs.writeFileSync(manifestFile, JSON.stringify({ ...manifest, version: 4 }, null, 2) + '\n');
    const files = tree(archive);
    const target = path.join(dir, 'restored.img');
    for (const args of [
      ['states', archive],
      ['snapshot', archive],
      ['verify', archive],
      ['restore', archive, '--state', '0', '--to', target],
      ['catalog', 'rebuild', archive],
      ['init', primary, archive],
    ]) {
      expectRefused(
        tidemark(...args),
        /uses archive format 4, newer than this Tidemark reads \(3\): update Tidemark/,
      );
      expect(tree(archive), args.join(' ')).toEqual(files);
    }
    expect(fs.existsSync(target)).toBe(false);
    // Put the version back: everything is as it was.
    fs.writeFileSync(manifestFile, original);
    expectUntouched(b);
  });

  it('a catalog of schema version 2: a clear error, nothing changed', () => {
    const { dir, primary, archive } = archived();
    const catalogFile = path.join(archive, 'catalog.sqlite');
    const setVersion = (v: number): void => {
      const db = new Database(catalogFile);
      try {
        expect(db.pragma('user_version', { simple: true })).toBe(v === 2 ? 1 : 2);
        db.pragma(`user_version = ${v}`);
      } finally {
        db.close();
      }
    };
    const b = baseline(archive, primary);
    setVersion(2);
    const files = tree(archive);
    const target = path.join(dir, 'restored.img');
    for (const args of [
      ['states', archive],
      ['snapshot', archive],
      ['verify', archive],
      ['restore', archive, '--state', '0', '--to', target],
      ['catalog', 'rebuild', archive],
    ]) {
      expectRefused(
        tidemark(...args),
        /the catalog .*catalog\.sqlite has format 2, newer than this Tidemark reads \(1\): update Tidemark/,
      );
      expect(tree(archive), args.join(' ')).toEqual(files);
    }
    expect(fs.existsSync(target)).toBe(false);
    setVersion(1);
    b.files = tree(archive);
    expectUntouched(b);
  });

  it('an update whose header says version 2: verify and restore fail naming it; older states still restore', () => {
    const { dir, primary, archive } = archived();
    const state0 = sha256(primary);
    writeAt(primary, 5 * BLOCK, urandom(3 * BLOCK));
    snapshotOk(archive);
    const b = baseline(archive, primary);
    const update = path.join(archive, 'updates', '0000000001.tmu');
    const header = Buffer.alloc(4);
    header.writeUInt32LE(2);
    writeAt(update, 8, header);
    const files = tree(archive);
    const target = path.join(dir, 'restored.img');
    const newer =
      /updates\/0000000001\.tmu uses archive format 2, newer than this Tidemark reads \(1\): update Tidemark/;
    for (const args of [
      ['verify', archive],
      ['restore', archive, '--state', '1', '--to', target],
      ['catalog', 'rebuild', archive],
    ]) {
      expectRefused(tidemark(...args), newer);
      expect(tree(archive), args.join(' ')).toEqual(files);
      expect(fs.existsSync(target)).toBe(false);
    }
    // State 0 does not need the newer update: it stays restorable.
    tidemarkJson('restore', archive, '--state', '0', '--to', target);
    expect(sha256(target)).toBe(state0);
    expect(tree(archive)).toEqual(files);
    header.writeUInt32LE(1);
    writeAt(update, 8, header);
    expectUntouched(b);
  });
});

// ---------------------------------------------------------------------------------------------
// 6. Restore of what is not there, or to where it does not fit

describe('restore that cannot be done', () => {
  it('refuses a state that does not exist and a time before the first state, and writes no target', () => {
    const { dir, primary, archive } = archived();
    const b = baseline(archive, primary);
    const target = path.join(dir, 'restored.img');
    expectRefused(
      tidemark('restore', archive, '--state', '7', '--to', target),
      /state 7 does not exist in this archive/,
    );
    expectRefused(
      tidemark('restore', archive, '--at', '2000-01-01T00:00:00Z', '--to', target),
      /no state at or before 2000-01-01T00:00:00\.000Z/,
    );
    expect(fs.readdirSync(dir).sort()).toEqual(['archive', 'disk.img']);
    expectUntouched(b);
  });

  it.skipIf(rootReason)(
    'refuses a loop device smaller than the primary, and writes nothing to it',
    () => {
      const { primary, archive } = archived();
      const dir = rootDir();
      const small = path.join(dir, 'small.img');
      fs.writeFileSync(small, urandom(MiB));
      const smallSha = sha256(small);
      const device = attachLoop(small);
      const b = baseline(archive, primary);
      for (const flags of [[], ['--force'], ['--rollback']]) {
        expectRefused(
          tidemark('restore', archive, '--state', '0', '--to', device, ...flags),
          new RegExp(`${device} is too small: it holds 1048576 bytes, the state needs 2097152`),
        );
      }
      expect(sha256(small)).toBe(smallSha);
      expectUntouched(b);
    },
  );

  it.skipIf(rootReason)(
    'refuses a new file that does not fit a 1 MiB tmpfs, and leaves no partial file',
    () => {
      const { primary, archive } = archived();
      const mountPoint = path.join(rootDir(), 'tmpfs');
      mount(['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs'], mountPoint);
      const b = baseline(archive, primary);
      expectRefused(
        tidemark('restore', archive, '--state', '0', '--to', path.join(mountPoint, 'restored.img')),
        /not enough free space in .*tmpfs: the state needs 2097152 bytes, 1048576 are free/,
      );
      expect(fs.readdirSync(mountPoint)).toEqual([]);
      expectUntouched(b);
    },
  );

  it.skipIf(rootReason)(
    'restores into an existing empty file on a small tmpfs, or leaves it empty',
    () => {
      // 4 MiB of which 512 KiB is data, in two distant runs: fits 1 MiB only if the zero blocks
      // are not written out.
      const dir = tempDir();
      const primary = path.join(dir, 'sparse.img');
      fs.writeFileSync(primary, Buffer.alloc(4 * MiB));
      writeAt(primary, MiB, urandom(256 * 1024));
      writeAt(primary, 3 * MiB, urandom(256 * 1024));
      const archive = path.join(dir, 'archive');
      expect(tidemark('init', primary, archive, '--block-size', String(BLOCK)).code).toBe(0);
      const mountPoint = path.join(rootDir(), 'tmpfs');
      mount(['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs'], mountPoint);
      const target = path.join(mountPoint, 'restored.img');
      fs.writeFileSync(target, '');
      tidemarkJson('restore', archive, '--state', '0', '--to', target);
      expect(sha256(target)).toBe(sha256(primary));

      // A restore that fails after the first run was written (the last stored block is damaged)
      // leaves the file as empty as it found it.
      const update = path.join(archive, 'updates', '0000000000.tmu');
      const size = fs.statSync(update).size;
      const trailer = Buffer.alloc(80);
      const fd = fs.openSync(update, 'r');
      fs.readSync(fd, trailer, 0, 80, size - 80);
      fs.closeSync(fd);
      const lastData = lastBlockRecordEnd(update) - 10; // inside the last stored block
      const original = Buffer.alloc(1);
      const fd2 = fs.openSync(update, 'r');
      fs.readSync(fd2, original, 0, 1, lastData);
      fs.closeSync(fd2);
      writeAt(update, lastData, Buffer.from([original[0]! ^ 0x40]));
      fs.writeFileSync(target, '');
      expectRefused(
        tidemark('restore', archive, '--state', '0', '--to', target),
        /0000000000\.tmu: damaged block at byte \d+/,
      );
      expect(fs.statSync(target).size).toBe(0);
      writeAt(update, lastData, original);

      // A state with 1.5 MiB of data does not fit: refused, and the empty file stays empty.
      writeAt(primary, 2 * MiB, urandom(MiB));
      snapshotOk(archive);
      const b = baseline(archive, primary);
      expectRefused(
        tidemark('restore', archive, '--state', '1', '--to', target),
        /not enough free space|no space left/,
      );
      expect(fs.readdirSync(mountPoint)).toEqual(['restored.img']);
      expect(fs.statSync(target).size).toBe(0);
      expectUntouched(b);
    },
  );
});

// ---------------------------------------------------------------------------------------------
// 7. A read-only secondary

describe.skipIf(rootReason)('a read-only secondary (ext4 on a loop device, remounted ro)', () => {
  it('refuses to write to it with a clear error; states, verify and restore still work', () => {
    const dir = rootDir();
    const { mountPoint } = ext4(dir, 32 * MiB, 'secondary');
    const primary = path.join(dir, 'disk.img');
    fs.writeFileSync(primary, urandom(2 * MiB));
    const archive = path.join(mountPoint, 'archive');
    expect(tidemark('init', primary, archive, '--block-size', String(BLOCK)).code).toBe(0);
    const copies = [path.join(dir, 'state-0.img'), path.join(dir, 'state-1.img')];
    fs.copyFileSync(primary, copies[0]!);
    writeAt(primary, 3 * BLOCK, urandom(4 * BLOCK));
    snapshotOk(archive);
    fs.copyFileSync(primary, copies[1]!);

    sh('mount', ['-o', 'remount,ro', mountPoint]);
    writeAt(primary, 20 * BLOCK, urandom(2 * BLOCK));
    const b = baseline(archive, primary);
    expectRefused(tidemark('snapshot', archive), /the backup disk is read-only/);
    expectRefused(tidemark('catalog', 'rebuild', archive), /the backup disk is read-only/);
    expectRefused(
      tidemark('init', primary, path.join(mountPoint, 'another')),
      /the backup disk is read-only \(creating .*another\)/,
    );
    expectUntouched(b);

    expect(tidemark('verify', archive, '--deep').code).toBe(0);
    for (const id of [0, 1]) {
      const target = path.join(dir, `restored-${id}.img`);
      const report = tidemarkJson<{ verified: boolean }>(
        'restore',
        archive,
        '--state',
        String(id),
        '--to',
        target,
      );
      expect(report.verified).toBe(true);
      expect(sha256(target)).toBe(sha256(copies[id]!));
    }
    expect(tree(archive)).toEqual(b.files);
  });
});

// ---------------------------------------------------------------------------------------------
// 8. A secondary that fills up in the middle of an update

describe.skipIf(rootReason)(
  'a secondary that is full in the middle of an update (16 MiB ext4 on a loop device)',
  () => {
    it('fails with "full", records nothing, leaves no temp file; after freeing space the next snapshot works', () => {
      const dir = rootDir();
      const { mountPoint } = ext4(dir, 16 * MiB, 'secondary');
      // About 14 MiB free: 4 MiB of filler + an 8 MiB baseline leave ~1.5 MiB, too little for
      // the 4 MiB of changed random blocks below.
      const filler = path.join(mountPoint, 'filler');
      fs.writeFileSync(filler, urandom(4 * MiB));
      const primary = path.join(dir, 'disk.img');
      fs.writeFileSync(primary, urandom(8 * MiB));
      const archive = path.join(mountPoint, 'archive');
      expect(tidemark('init', primary, archive, '--block-size', String(BLOCK)).code).toBe(0);
      const state0 = sha256(primary);
      writeAt(primary, 32 * BLOCK, urandom(4 * MiB));

      const b = baseline(archive, primary);
      expectRefused(
        tidemark('snapshot', archive),
        /the backup disk is full \(writing updates\/0000000001\.tmu\)/,
      );
      expect(incompleteFiles(mountPoint)).toEqual([]);
      expectUntouched(b);

      // Filled to the last block: even the lock cannot be written. No empty lock may stay behind.
      const brim = path.join(mountPoint, 'brim');
      spawnSync('dd', ['if=/dev/zero', `of=${brim}`, 'bs=4096'], { stdio: 'ignore' });
      // ext4 may keep a few blocks back for its own metadata after dd hits ENOSPC.
      expect(fs.statfsSync(mountPoint).bavail).toBeLessThan(16);
      expectRefused(tidemark('snapshot', archive), /the backup disk is full/);
      expect(incompleteFiles(mountPoint)).toEqual([]);
      expectUntouched(b);

      // init of another primary that does not fit: refused, its folder gone again.
      const big = path.join(dir, 'big.img');
      fs.writeFileSync(big, urandom(MiB));
      fs.rmSync(brim);
      const free = Number(fs.statfsSync(mountPoint).bavail * fs.statfsSync(mountPoint).bsize);
      fs.writeFileSync(big, urandom(free + MiB));
      expectRefused(
        tidemark('init', big, path.join(mountPoint, 'big-archive')),
        /the backup disk is full/,
      );
      expect(fs.existsSync(path.join(mountPoint, 'big-archive'))).toBe(false);
      expect(incompleteFiles(mountPoint)).toEqual([]);
      expectUntouched(b);

      // Free space: the very same snapshot now goes through and restores byte-identical.
      fs.rmSync(filler);
      const state1 = snapshotOk(archive);
      expect(state1.id).toBe(1);
      expect(state1.changedBlocks).toBe(64);
      verifyOk(archive);
      for (const [id, sha] of [
        [0, state0],
        [1, sha256(primary)],
      ] as const) {
        const target = path.join(dir, `restored-${id}.img`);
        tidemarkJson('restore', archive, '--state', String(id), '--to', target);
        expect(sha256(target)).toBe(sha);
      }
      expect(incompleteFiles(mountPoint)).toEqual([]);
    });

    it('fails with "full" when the update fits but the catalog cannot record it, and keeps no state', () => {
      const dir = rootDir();
      const { mountPoint } = ext4(dir, 16 * MiB, 'secondary');
      const primary = path.join(dir, 'disk.img');
      fs.writeFileSync(primary, urandom(2 * MiB));
      const archive = path.join(mountPoint, 'archive');
      expect(tidemark('init', primary, archive, '--block-size', String(BLOCK)).code).toBe(0);
      writeAt(primary, 7 * BLOCK, urandom(BLOCK));

      // One changed random block makes an update of about 66 KB. Leave room for it and the lock
      // but not for the catalog's rollback journal (tens of KB): the update commits, then the
      // catalog fails. A failed snapshot must not leave that update behind as a state.
      const fill = path.join(mountPoint, 'filler');
      const s = fs.statfsSync(mountPoint);
      const fd = fs.openSync(fill, 'w');
      fs.writeSync(fd, Buffer.alloc(Number(s.bavail * s.bsize) - 80 * 1024));
      fs.fsyncSync(fd);
      fs.closeSync(fd);

      const b = baseline(archive, primary);
      expectRefused(tidemark('snapshot', archive), /the backup disk is full \(the catalog\)/);
      expect(fs.readdirSync(path.join(archive, 'updates'))).toEqual(['0000000000.tmu']);
      expect(incompleteFiles(mountPoint)).toEqual([]);
      expectUntouched(b);

      fs.rmSync(fill);
      const state1 = snapshotOk(archive);
      expect(state1).toMatchObject({ id: 1, changedBlocks: 1 });
      const target = path.join(dir, 'restored.img');
      tidemarkJson('restore', archive, '--state', '1', '--to', target);
      expect(sha256(target)).toBe(sha256(primary));
    });
  },
);

/** End offset of the last stored-block record of an update (docs/FORMAT.md: records, kind 0). */
function lastBlockRecordEnd(update: string): number {
  const bytes = fs.readFileSync(update);
  const mapOffset = bytes.readUInt32LE(bytes.length - 80 + 16);
  let at = 16;
  let end = -1;
  while (at < mapOffset) {
    const next = at + 48 + bytes.readUInt32LE(at + 36);
    if (bytes.readUInt8(at + 41) === 0) end = next;
    at = next;
  }
  return end;
}
