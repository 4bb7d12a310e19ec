/**
 * Several files and folders of a volume state restored in one pass: `--path` given more than
 * once on the command line, `paths` in the engine, and `{ kind: 'paths' }` through the services'
 * target mapping. Each chosen path keeps its place in the tree under the target; the report lists
 * them; nothing else of the state is written.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { restoreVolume } from '../../src/main/engine/volume-engine.js';
import { volumeRestoreTarget } from '../../src/main/services/job-service.js';
import type { VolumeRestoreReport } from '../../src/shared/states.js';
import { tidemark, tidemarkJson } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';

function twoStates(): { work: string; tree: string; arch: string } {
  const work = tempDir();
  const tree = path.join(work, 'tree');
  const arch = path.join(work, 'arch');
  fs.mkdirSync(path.join(tree, 'docs', 'deep'), { recursive: true });
  fs.mkdirSync(path.join(tree, 'photos'));
  fs.writeFileSync(path.join(tree, 'docs', 'deep', 'a.txt'), 'first a');
  fs.writeFileSync(path.join(tree, 'docs', 'skip.txt'), 'not asked for');
  fs.writeFileSync(path.join(tree, 'photos', 'b.jpg'), Buffer.alloc(200_000, 7));
  fs.writeFileSync(path.join(tree, 'photos', 'c.jpg'), Buffer.alloc(3000, 8));
  fs.writeFileSync(path.join(tree, 'top.txt'), 'top');
  expect(tidemark('init', tree, arch).code).toBe(0);
  fs.writeFileSync(path.join(tree, 'docs', 'deep', 'a.txt'), 'second a, longer');
  fs.rmSync(path.join(tree, 'photos', 'b.jpg'));
  expect(tidemarkJson<{ changed: boolean }>('snapshot', arch).changed).toBe(true);
  return { work, tree, arch };
}

function listTree(dir: string): string[] {
  return (fs.readdirSync(dir, { recursive: true }) as string[])
    .map((p) => p.split(path.sep).join('/'))
    .sort();
}

describe('restoring several paths in one pass', () => {
  it('repeated --path restores each at its place, verified, and reports every path', () => {
    const { work, tree, arch } = twoStates();
    const out = path.join(work, 'out');
    const report = tidemarkJson<VolumeRestoreReport>(
      'restore',
      arch,
      '--state',
      '0',
      '--to',
      out,
      '--path',
      'docs/deep/a.txt',
      '--path',
      path.join(tree, 'photos'),
      '--path',
      // Inside a folder already asked for: restored once, with it.
      'photos/c.jpg',
    );
    expect(report.paths).toEqual(['docs/deep/a.txt', 'photos']);
    expect(report.path).toBe('');
    expect(report.verified).toBe(true);
    expect(report.files).toBe(3);
    expect(report.bytesWritten).toBe(7 + 200_000 + 3000);
    expect(listTree(out)).toEqual([
      'docs',
      'docs/deep',
      'docs/deep/a.txt',
      'photos',
      'photos/b.jpg',
      'photos/c.jpg',
    ]);
    expect(fs.readFileSync(path.join(out, 'docs', 'deep', 'a.txt'), 'utf8')).toBe('first a');
    expect(
      fs.readFileSync(path.join(out, 'photos', 'b.jpg')).equals(Buffer.alloc(200_000, 7)),
    ).toBe(true);
    // The folders above a chosen file get their recorded times too.
    const recorded = fs.statSync(path.join(tree, 'docs', 'deep')).mtimeMs;
    expect(Math.abs(fs.statSync(path.join(out, 'docs', 'deep')).mtimeMs - recorded)).toBeLessThan(
      1,
    );
    const text = tidemark(
      'restore',
      arch,
      '--state',
      '1',
      '--to',
      path.join(work, 'out2'),
      '--path',
      'top.txt',
      '--path',
      'docs/deep/a.txt',
    );
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(
      /^restored docs\/deep\/a\.txt, top\.txt of state 1 to .*out2: 2 files/,
    );
    expect(fs.readFileSync(path.join(work, 'out2', 'docs', 'deep', 'a.txt'), 'utf8')).toBe(
      'second a, longer',
    );
  });

  it('refuses a path missing from the state and writes nothing', async () => {
    const { work, arch } = twoStates();
    const out = path.join(work, 'out');
    const r = tidemark(
      'restore',
      arch,
      '--state',
      '1',
      '--to',
      out,
      '--path',
      'top.txt',
      '--path',
      'photos/b.jpg',
    );
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim()).toBe('tidemark: photos/b.jpg is not in state 1');
    expect(fs.existsSync(out)).toBe(false);
    await expect(
      restoreVolume(arch, { stateId: 1 }, out, { paths: ['top.txt', '../etc'] }),
    ).rejects.toThrow(/leaves the tree/);
    expect(fs.existsSync(out)).toBe(false);
  });

  it('one path in the list is a plain single-path restore; the whole tree wins over parts', async () => {
    const { work, arch } = twoStates();
    const single = await restoreVolume(arch, { stateId: 0 }, path.join(work, 'one.txt'), {
      paths: ['top.txt'],
    });
    expect(single.path).toBe('top.txt');
    expect(single.paths).toBeUndefined();
    expect(fs.readFileSync(path.join(work, 'one.txt'), 'utf8')).toBe('top');
    const all = await restoreVolume(arch, { stateId: 0 }, path.join(work, 'all'), {
      paths: ['top.txt', '.'],
    });
    expect(all.paths).toBeUndefined();
    expect(all.files).toBe(5);
  });

  it('the services map { kind: paths } onto one target folder, or the original location', () => {
    const primary = '/home/me/Documents';
    expect(
      volumeRestoreTarget(
        primary,
        { kind: 'paths', paths: ['b/x.txt', 'a', 'a/y.txt'] },
        '/tmp/out',
      ),
    ).toEqual({ target: '/tmp/out', path: '', paths: ['a', 'b/x.txt'] });
    expect(
      volumeRestoreTarget(primary, { kind: 'paths', paths: ['a/y.txt', 'a/y.txt'] }, '/tmp/out'),
    ).toEqual({ target: '/tmp/out/y.txt', path: 'a/y.txt' });
    expect(
      volumeRestoreTarget(primary, { kind: 'paths', paths: ['a', `${primary}/b`] }, primary),
    ).toEqual({ target: primary, path: '', paths: ['a', 'b'] });
    expect(() =>
      volumeRestoreTarget(primary, { kind: 'paths', paths: ['a', '/etc/passwd'] }, '/tmp/out'),
    ).toThrow(/is not a path inside the protected folder/);
  });
});
