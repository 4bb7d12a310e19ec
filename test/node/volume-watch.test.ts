/**
 * `tidemark watch`: the native watcher feeds the journal, points come every DURATION, a restart
 * finds what changed while nothing watched, and the journal survives a kill.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { PathJournal } from '../../src/main/engine/volume/path-journal.js';
import { tidemark, tidemarkJson } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';
import { copyTree, describeTree, treeDifferences } from '../helpers/tree.js';
import { sleep, WatchProcess } from '../helpers/watch.js';

function setup(): { work: string; tree: string; arch: string } {
  const work = tempDir();
  const tree = path.join(work, 'tree');
  const arch = path.join(work, 'arch');
  fs.mkdirSync(path.join(tree, 'docs'), { recursive: true });
  for (let i = 0; i < 50; i++)
    fs.writeFileSync(path.join(tree, 'docs', `f${i}.txt`), `file ${i}\n`);
  const init = tidemark('init', tree, arch, '--no-btrfs-snapshot');
  expect(init.code, init.stderr).toBe(0);
  return { work, tree, arch };
}

type StateLine = {
  changed: boolean;
  state?: { id: number; consistency: string; changedFiles: number };
};

function expectRestoresAs(arch: string, id: number, reference: string, out: string): void {
  const r = tidemark('restore', arch, '--state', String(id), '--to', out);
  expect(r.code, r.stderr).toBe(0);
  expect(treeDifferences(describeTree(reference), describeTree(out))).toEqual([]);
}

describe('tidemark watch', () => {
  it('records what the watcher saw at each point, and stops cleanly on SIGTERM', async () => {
    const { work, tree, arch } = setup();
    const w = new WatchProcess(arch, '400ms');
    try {
      // The first point after start is a rescan: nothing changed since init.
      await w.waitFor((l) => l.changed === false);
      fs.writeFileSync(path.join(tree, 'docs', 'new.txt'), 'new');
      fs.appendFileSync(path.join(tree, 'docs', 'f1.txt'), 'more');
      fs.rmSync(path.join(tree, 'docs', 'f2.txt'));
      fs.mkdirSync(path.join(tree, 'sub'));
      fs.writeFileSync(path.join(tree, 'sub', 'x'), 'x');
      // The watcher names files in UTF-8: this one is found through its folder.
      fs.writeFileSync(Buffer.from(`${tree}/docs/caf\xe9.txt`, 'latin1'), 'latin-1 name');
      const line = (await w.waitFor((l) => l.changed === true)) as StateLine;
      expect(line.state?.id).toBe(1);
      expect(line.state?.consistency).toBe('quiescent');
      expect(line.state?.changedFiles).toBeGreaterThanOrEqual(6);
      copyTree(tree, path.join(work, 'ref1'));
      // Quiet tree: no further state.
      await sleep(1200);
      expect(w.lines.filter((l) => l.changed === true)).toHaveLength(1);
    } finally {
      const end = await w.stop('SIGTERM');
      expect(end.code).toBe(0);
    }
    expectRestoresAs(arch, 1, path.join(work, 'ref1'), path.join(work, 'out1'));
  });

  it('a restart finds the changes made while no watcher ran (and after a kill -9)', async () => {
    const { work, tree, arch } = setup();
    let w = new WatchProcess(arch, '30s');
    // Killed before its first point, with a change already seen by the watcher. A loaded machine
    // may take a while to start the watcher: the change is written again until it is journalled.
    const journalled = (): boolean =>
      fs.existsSync(path.join(arch, 'volume.journal')) &&
      fs
        .readFileSync(path.join(arch, 'volume.journal'))
        .toString('latin1')
        .includes('docs/seen-then-killed.txt');
    for (let i = 0; i < 40 && !journalled(); i++) {
      fs.writeFileSync(path.join(tree, 'docs', 'seen-then-killed.txt'), `journal ${i}`);
      await sleep(700);
    }
    await w.stop('SIGKILL');
    expect(journalled()).toBe(true);
    // Changes while nothing runs.
    fs.writeFileSync(path.join(tree, 'docs', 'f3.txt'), 'changed offline');
    fs.rmSync(path.join(tree, 'docs', 'f4.txt'));
    fs.renameSync(path.join(tree, 'docs', 'f5.txt'), path.join(tree, 'f5-moved.txt'));
    fs.chmodSync(path.join(tree, 'docs', 'f6.txt'), 0o600);
    copyTree(tree, path.join(work, 'ref'));
    w = new WatchProcess(arch, '300ms');
    try {
      const line = (await w.waitFor((l) => l.changed === true)) as StateLine;
      expect(line.state?.id).toBe(1);
      expect(line.state?.changedFiles).toBeGreaterThanOrEqual(5);
    } finally {
      expect((await w.stop('SIGINT')).code).toBe(0);
    }
    expectRestoresAs(arch, 1, path.join(work, 'ref'), path.join(work, 'out'));
    const states = tidemarkJson<Array<{ id: number }>>('states', arch);
    expect(states.map((s) => s.id)).toEqual([0, 1]);
  });

  it('the journal keeps its paths across a reopen, and a failed point gives them back', () => {
    const dir = tempDir();
    const file = path.join(dir, 'volume.journal');
    let j = PathJournal.open(file);
    j.note('a/b');
    j.note('a/b');
    j.note('c');
    j.noteFolder('a');
    j.close();
    j = PathJournal.open(file);
    expect(j.size).toBe(3);
    const rotation = j.rotate();
    expect([...rotation.suspects.paths].sort()).toEqual(['a', 'a/b', 'c']);
    expect([...rotation.suspects.dirs]).toEqual(['a']);
    j.note('d');
    j.close();
    // A crash after the rotation: reopening gives the rotated paths back too.
    j = PathJournal.open(file);
    expect(j.size).toBe(4);
    const r2 = j.rotate();
    r2.settle(false);
    expect(j.size).toBe(4);
    j.rotate().settle(true);
    j.close();
    expect(PathJournal.open(file).size).toBe(0);
  });
});
