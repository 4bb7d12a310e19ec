/**
 * Odd files in a volume: unreadable files and folders (reported per file, the point goes on),
 * FIFOs, sockets and device nodes, names that are not UTF-8, very long paths, hard links, files
 * deleted or growing while the tree is read, and an archive inside the tree.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { StateInfo } from '../../src/shared/states.js';
import { startBusyAppender } from '../helpers/busy-writer.js';
import { CLI, tidemark, tidemarkJson } from '../helpers/cli.js';
import { stopProcess } from '../helpers/sqlite-check.js';
import { tempDir } from '../helpers/tmp.js';
import { describeTree, treeDifferences } from '../helpers/tree.js';

const isRoot = process.getuid?.() === 0;
const NOBODY = 65534;

/** Runs the CLI as an unprivileged user when the tests run as root (root reads everything). */
function asUser(...args: string[]) {
  const cmd = isRoot
    ? [
        'setpriv',
        `--reuid=${NOBODY}`,
        `--regid=${NOBODY}`,
        '--clear-groups',
        process.execPath,
        CLI,
        ...args,
      ]
    : [process.execPath, CLI, ...args];
  const r = spawnSync(cmd[0] as string, cmd.slice(1), { encoding: 'utf8' });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

describe('odd files in a volume', () => {
  it('unreadable files and folders are reported one by one and keep their last version', () => {
    const work = tempDir();
    const tree = path.join(work, 'tree');
    const arch = path.join(work, 'arch');
    fs.mkdirSync(path.join(tree, 'closed'), { recursive: true });
    fs.writeFileSync(path.join(tree, 'open.txt'), 'readable');
    fs.writeFileSync(path.join(tree, 'secret.txt'), 'version 1');
    fs.writeFileSync(path.join(tree, 'closed', 'inside.txt'), 'in a closed folder');
    if (isRoot) spawnSync('chown', ['-R', `${NOBODY}:${NOBODY}`, work]);
    const init = asUser('init', tree, arch, '--json');
    expect(init.code, init.stderr).toBe(0);

    fs.writeFileSync(path.join(tree, 'secret.txt'), 'version 2, unreadable');
    fs.chmodSync(path.join(tree, 'secret.txt'), 0o000);
    fs.chmodSync(path.join(tree, 'closed'), 0o000);
    fs.writeFileSync(path.join(tree, 'open.txt'), 'readable, changed');
    fs.writeFileSync(path.join(tree, 'new-unreadable.txt'), 'x');
    fs.chmodSync(path.join(tree, 'new-unreadable.txt'), 0o000);
    if (isRoot) spawnSync('chown', ['-R', `${NOBODY}:${NOBODY}`, tree]);
    const snap = asUser('snapshot', arch, '--json');
    expect(snap.code, snap.stderr).toBe(0);
    const state = (JSON.parse(snap.stdout) as { state: StateInfo }).state;
    expect(state.unreadable?.map((u) => u.path).sort()).toEqual([
      'closed',
      'new-unreadable.txt',
      'secret.txt',
    ]);
    for (const u of state.unreadable ?? []) expect(u.reason).toBe('permission denied');
    expect(snap.stderr).toMatch(/^tidemark: could not read secret.txt: permission denied/m);
    fs.chmodSync(path.join(tree, 'closed'), 0o755);
    fs.chmodSync(path.join(tree, 'secret.txt'), 0o644);

    const out = path.join(work, 'out');
    expect(tidemark('restore', arch, '--state', '1', '--to', out).code).toBe(0);
    expect(fs.readFileSync(path.join(out, 'open.txt'), 'utf8')).toBe('readable, changed');
    // The unreadable file and folder keep what the last state had; the new one is not there.
    expect(fs.readFileSync(path.join(out, 'secret.txt'), 'utf8')).toBe('version 1');
    expect(fs.readFileSync(path.join(out, 'closed', 'inside.txt'), 'utf8')).toBe(
      'in a closed folder',
    );
    expect(fs.existsSync(path.join(out, 'new-unreadable.txt'))).toBe(false);
  });

  it('special files, non-UTF-8 names, long paths and hard links restore as they were', async () => {
    const work = tempDir();
    const tree = path.join(work, 'tree');
    const arch = path.join(work, 'arch');
    fs.mkdirSync(tree);
    spawnSync('mkfifo', [path.join(tree, 'pipe')]);
    const server = net.createServer();
    await new Promise<void>((r) => server.listen(path.join(tree, 'app.sock'), r));
    if (isRoot) spawnSync('mknod', [path.join(tree, 'null-dev'), 'c', '1', '3']);
    const latin = Buffer.concat([Buffer.from(tree), Buffer.from('/caf\xe9-\xff.txt', 'latin1')]);
    fs.writeFileSync(latin, 'not utf-8');
    let deep = tree;
    for (let i = 0; i < 14; i++)
      deep = path.join(deep, `${String(i).padStart(3, '0')}-${'x'.repeat(200)}`);
    fs.mkdirSync(deep, { recursive: true });
    fs.writeFileSync(path.join(deep, 'far.txt'), 'far away');
    fs.writeFileSync(path.join(tree, 'one'), 'linked content');
    fs.linkSync(path.join(tree, 'one'), path.join(tree, 'two'));
    fs.chmodSync(path.join(tree, 'one'), 0o640);
    let state: StateInfo;
    try {
      state = tidemarkJson<StateInfo>('init', tree, arch);
    } finally {
      server.close();
    }
    expect(state.changedFiles).toBe(isRoot ? 21 : 20);

    const out = path.join(work, 'out');
    const r = tidemarkJson<{ skipped: Array<{ path: string; reason: string }> }>(
      'restore',
      arch,
      '--state',
      '0',
      '--to',
      out,
    );
    expect(r.skipped.map((s) => s.path)).toEqual(['app.sock']);
    expect(fs.lstatSync(path.join(out, 'pipe')).isFIFO()).toBe(true);
    if (isRoot)
      expect(fs.lstatSync(path.join(out, 'null-dev')).rdev).toBe(fs.lstatSync('/dev/null').rdev);
    const restoredLatin = Buffer.concat([
      Buffer.from(out),
      Buffer.from('/caf\xe9-\xff.txt', 'latin1'),
    ]);
    expect(fs.readFileSync(restoredLatin, 'utf8')).toBe('not utf-8');
    expect(fs.readFileSync(path.join(out, path.relative(tree, deep), 'far.txt'), 'utf8')).toBe(
      'far away',
    );
    const one = fs.statSync(path.join(out, 'one'));
    expect(one.ino).toBe(fs.statSync(path.join(out, 'two')).ino);
    expect(one.nlink).toBe(2);
    expect(one.mode & 0o777).toBe(0o640);
    const skipSocket = (rel: string) => rel === 'app.sock';
    expect(treeDifferences(describeTree(tree, skipSocket), describeTree(out))).toEqual([]);
    // History and diff name a non-UTF-8 path with U+FFFD where its bytes are not UTF-8.
    const history = tidemarkJson<Array<{ state: number }>>('history', arch, 'one');
    expect(history.map((h) => h.state)).toEqual([0]);
  });

  it('files growing or vanishing while the tree is read: the point still completes and restores', async () => {
    const work = tempDir();
    const tree = path.join(work, 'tree');
    const arch = path.join(work, 'arch');
    fs.mkdirSync(path.join(tree, 'many'), { recursive: true });
    for (let i = 0; i < 800; i++)
      fs.writeFileSync(path.join(tree, 'many', `f${i}`), Buffer.alloc(4000, i));
    fs.writeFileSync(path.join(tree, 'growing.log'), '');
    expect(tidemark('init', tree, arch).code).toBe(0);
    // One process appends without pause and deletes files while the snapshot reads them.
    const many = Array.from({ length: 800 }, (_, i) => path.join(tree, 'many', `f${i}`));
    const busy = await startBusyAppender(path.join(tree, 'growing.log'), many);
    try {
      const r = tidemarkJson<{ changed: boolean; state: StateInfo }>('snapshot', arch);
      expect(r.changed).toBe(true);
      expect(r.state.consistency).toBe('none');
      expect(r.state.consistencyReason).toMatch(
        /kept changing while it was read \(\d+ rounds, [\d.]+ s\) \(e\.g\. growing\.log\)/,
      );
    } finally {
      await stopProcess(busy);
    }
    const out = path.join(work, 'out');
    const restore = tidemark('restore', arch, '--state', '1', '--to', out);
    expect(restore.code, restore.stderr).toBe(0);
    expect(fs.statSync(path.join(out, 'growing.log')).size).toBeGreaterThan(0);
  });

  it('an archive inside the tree is left out of it, and so are caches', () => {
    const work = tempDir();
    const tree = path.join(work, 'tree');
    fs.mkdirSync(path.join(tree, '.cache', 'x'), { recursive: true });
    fs.mkdirSync(path.join(tree, 'src'));
    fs.writeFileSync(path.join(tree, '.cache', 'x', 'blob'), 'cache');
    fs.writeFileSync(path.join(tree, 'src', 'main.c'), 'int main;');
    fs.writeFileSync(path.join(tree, 'src', 'main.o'), 'object');
    const arch = path.join(tree, 'backup');
    const init = tidemarkJson<StateInfo>('init', tree, arch, '--exclude', '*.o');
    expect(init.changedFiles).toBe(2);
    const again = tidemarkJson<{ changed: boolean }>('snapshot', arch);
    expect(again.changed).toBe(false);
    const diff = tidemarkJson<{ entries: unknown[] }>('diff', arch, '0', '0');
    expect(diff.entries).toEqual([]);
  });
});
