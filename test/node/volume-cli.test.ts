/**
 * The volume commands seen from the command line: history and diff, hooks, restore of one file
 * or folder and its refusals, verify and catalog rebuild, and one clear line for every bad input.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { DiffReport, FileVersion, StateInfo, VerifyReport } from '../../src/shared/states.js';
import { tidemark, tidemarkJson } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';

function expectRefused(r: { code: number; stdout: string; stderr: string }, message: RegExp): void {
  expect(r.code).not.toBe(0);
  expect(r.stderr.trim().split('\n')).toHaveLength(1);
  expect(r.stderr).toMatch(/^tidemark: /);
  expect(r.stderr).toMatch(message);
}

function threeStates(): { work: string; tree: string; arch: string } {
  const work = tempDir();
  const tree = path.join(work, 'tree');
  const arch = path.join(work, 'arch');
  fs.mkdirSync(path.join(tree, 'docs'), { recursive: true });
  fs.writeFileSync(path.join(tree, 'docs', 'report.txt'), 'draft 1');
  fs.writeFileSync(path.join(tree, 'docs', 'old.txt'), 'to be removed');
  expect(tidemark('init', tree, arch).code).toBe(0);
  fs.writeFileSync(path.join(tree, 'docs', 'report.txt'), 'draft 2, longer');
  fs.writeFileSync(path.join(tree, 'new.bin'), Buffer.alloc(5000, 3));
  expect(tidemarkJson<{ changed: boolean }>('snapshot', arch).changed).toBe(true);
  fs.rmSync(path.join(tree, 'docs', 'old.txt'));
  fs.chmodSync(path.join(tree, 'new.bin'), 0o600);
  expect(tidemarkJson<{ changed: boolean }>('snapshot', arch).changed).toBe(true);
  return { work, tree, arch };
}

describe('volume commands', () => {
  it('history lists the versions of one file; diff says what changed, with bytes', () => {
    const { tree, arch } = threeStates();
    const history = tidemarkJson<FileVersion[]>('history', arch, 'docs/report.txt');
    expect(history.map((v) => [v.state, v.size])).toEqual([
      [0, 7],
      [1, 15],
    ]);
    expect(history[0]!.contentHash).toMatch(/^[0-9a-f]{64}$/);
    expect(history[0]!.contentHash).not.toBe(history[1]!.contentHash);
    // An absolute path inside the tree works too.
    expect(
      tidemarkJson<FileVersion[]>('history', arch, path.join(tree, 'new.bin')).map((v) => v.mode),
    ).toEqual([0o644, 0o600]);
    expect(tidemark('history', arch, 'docs/report.txt').stdout).toMatch(
      /^state 0 .* file {2}7 B {2}mode 644 {2}content [0-9a-f]{16}$/m,
    );

    const d01 = tidemarkJson<DiffReport>('diff', arch, '0', '1');
    const byPath = new Map(d01.entries.map((e) => [e.path, e]));
    expect(byPath.get('new.bin')).toEqual({
      path: 'new.bin',
      change: 'added',
      type: 'file',
      sizeB: 5000,
    });
    expect(byPath.get('docs/report.txt')).toMatchObject({
      change: 'modified',
      sizeA: 7,
      sizeB: 15,
    });
    expect(d01.bytesAdded).toBe(5000 + 8);
    const d12 = tidemarkJson<DiffReport>('diff', arch, '1', '2');
    expect(d12.entries.filter((e) => e.change === 'removed')).toEqual([
      { path: 'docs/old.txt', change: 'removed', type: 'file', sizeA: 13 },
    ]);
    expect(d12.bytesRemoved).toBe(13);
    expect(tidemark('diff', arch, '1', '2').stdout).toMatch(/^- docs\/old\.txt {2}13 B$/m);
    // Reversed, the same change reads the other way.
    expect(
      tidemarkJson<DiffReport>('diff', arch, '2', '1').entries.find(
        (e) => e.path === 'docs/old.txt',
      )?.change,
    ).toBe('added');
  });

  it('restores one file or one folder, and never over the live tree unless forced', () => {
    const { work, tree, arch } = threeStates();
    const file = path.join(work, 'report-v1.txt');
    const r = tidemarkJson<{ files: number; path: string }>(
      'restore',
      arch,
      '--state',
      '0',
      '--path',
      'docs/report.txt',
      '--to',
      file,
    );
    expect(r).toMatchObject({ files: 1, path: 'docs/report.txt' });
    expect(fs.readFileSync(file, 'utf8')).toBe('draft 1');
    const folder = path.join(work, 'docs-v0');
    tidemarkJson('restore', arch, '--state', '0', '--path', 'docs', '--to', folder);
    expect(fs.readdirSync(folder).sort()).toEqual(['old.txt', 'report.txt']);

    // Over the live tree: refused, nothing touched; with --force it writes.
    expectRefused(
      tidemark('restore', arch, '--state', '0', '--to', tree),
      /is the protected folder .*--force/,
    );
    expectRefused(
      tidemark(
        'restore',
        arch,
        '--state',
        '0',
        '--path',
        'docs/report.txt',
        '--to',
        path.join(tree, 'docs', 'report.txt'),
      ),
      /lies inside the protected folder/,
    );
    expect(fs.readFileSync(path.join(tree, 'docs', 'report.txt'), 'utf8')).toBe('draft 2, longer');
    expectRefused(
      tidemark('restore', arch, '--state', '0', '--to', folder),
      /already exists and is not empty/,
    );
    const forced = tidemark(
      'restore',
      arch,
      '--state',
      '0',
      '--path',
      'docs/report.txt',
      '--to',
      path.join(tree, 'docs', 'report.txt'),
      '--force',
    );
    expect(forced.code, forced.stderr).toBe(0);
    expect(fs.readFileSync(path.join(tree, 'docs', 'report.txt'), 'utf8')).toBe('draft 1');
    expectRefused(
      tidemark('restore', arch, '--state', '0', '--path', 'nope.txt', '--to', path.join(work, 'x')),
      /nope\.txt is not in state 0/,
    );
    expect(fs.existsSync(path.join(work, 'x'))).toBe(false);
  });

  it('states --json carries changedFiles and consistency; verify finds a flipped bit; the catalog rebuilds', () => {
    const { arch } = threeStates();
    const states = tidemarkJson<StateInfo[]>('states', arch);
    expect(states.map((s) => [s.id, s.changedFiles, s.consistency])).toEqual([
      [0, 3, 'quiescent'],
      [1, 2, 'quiescent'],
      [2, 3, 'quiescent'],
    ]);
    expect(tidemarkJson<VerifyReport>('verify', arch, '--deep')).toMatchObject({
      ok: true,
      statesChecked: 3,
    });
    fs.rmSync(path.join(arch, 'catalog.sqlite'));
    expect(tidemarkJson<{ states: number }>('catalog', 'rebuild', arch).states).toBe(3);
    expect(tidemarkJson<StateInfo[]>('states', arch)).toEqual(states);

    // Flip one bit in the block stored by state 1 (new.bin's 5000 bytes of 3s, stored raw or zstd).
    const update = path.join(arch, 'updates', '0000000001.tmu');
    const bytes = fs.readFileSync(update);
    bytes[16 + 48 + 2]! ^= 1;
    fs.writeFileSync(update, bytes);
    const bad = tidemark('verify', arch, '--json');
    expect(bad.code).toBe(1);
    const report = JSON.parse(bad.stdout) as VerifyReport;
    expect(report.problems[0]).toMatchObject({ file: 'updates/0000000001.tmu' });
    expect(report.problems[0]!.states).toEqual([1, 2]);
    // State 0 does not use it and still restores.
    expect(
      tidemark('restore', arch, '--state', '0', '--to', path.join(path.dirname(arch), 'ok0')).code,
    ).toBe(0);
  });

  it('a failing pre-hook skips the point with its reason; the post-hook runs after each point', () => {
    const work = tempDir();
    const tree = path.join(work, 'tree');
    const arch = path.join(work, 'arch');
    const marker = path.join(work, 'post-ran');
    const gate = path.join(work, 'closed');
    fs.mkdirSync(tree);
    fs.writeFileSync(path.join(tree, 'a'), '1');
    const init = tidemark(
      'init',
      tree,
      arch,
      '--pre-hook',
      `test ! -e ${gate} || { echo database busy >&2; exit 3; }`,
      '--post-hook',
      `echo $TIDEMARK_HOOK >> ${marker}`,
    );
    expect(init.code, init.stderr).toBe(0);
    expect(fs.readFileSync(marker, 'utf8')).toBe('post\n');
    fs.writeFileSync(path.join(tree, 'a'), '2');
    fs.writeFileSync(gate, '');
    expectRefused(
      tidemark('snapshot', arch),
      /point skipped: pre-hook .* failed \(exit 3\): database busy/,
    );
    expect(tidemarkJson<StateInfo[]>('states', arch)).toHaveLength(1);
    fs.rmSync(gate);
    expect(tidemarkJson<{ changed: boolean }>('snapshot', arch).changed).toBe(true);
    expect(fs.readFileSync(marker, 'utf8')).toBe('post\npost\n');
  });

  it('bad input: one clear line, a non-zero exit, nothing written', () => {
    const { work, tree, arch } = threeStates();
    const before = fs.readdirSync(path.join(arch, 'updates'));
    expectRefused(tidemark('watch', arch), /watch needs --every DURATION/);
    expectRefused(tidemark('watch', arch, '--every', 'soon'), /--every needs a duration/);
    expectRefused(tidemark('watch', path.join(work, 'none'), '--every', '1s'), /no archive at/);
    expectRefused(tidemark('history', arch, 'docs/never.txt'), /docs\/never\.txt is in no state/);
    expectRefused(
      tidemark('history', arch, '/etc/passwd'),
      /not a path inside the protected folder/,
    );
    expectRefused(tidemark('diff', arch, '0', '9'), /state 9 does not exist/);
    expectRefused(tidemark('diff', arch, '0', 'x'), /state B needs a whole number/);
    expectRefused(
      tidemark('restore', arch, '--state', '0', '--to', path.join(work, 'r'), '--rollback'),
      /--rollback is for devices/,
    );
    expectRefused(tidemark('init', tree, arch), /already holds an archive of/);
    expectRefused(
      tidemark('init', tree, path.join(tree, 'docs', '..')),
      /cannot hold the folder it protects/,
    );
    fs.renameSync(tree, `${tree}-gone`);
    expectRefused(tidemark('snapshot', arch), /the protected folder .* is gone/);
    fs.renameSync(`${tree}-gone`, tree);
    expect(fs.readdirSync(path.join(arch, 'updates'))).toEqual(before);
    expect(tidemark('verify', arch).code).toBe(0);
  });
});
