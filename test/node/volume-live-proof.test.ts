/**
 * How a watch point proves itself without waiting out the watcher after its reads: a round
 * claims the tree as it was when it began; each path it looked at must show (by its ctime, or
 * its folder's for a path gone) no change since then, and the watcher's late events are awaited
 * from the round's beginning, with nothing lost between rounds. Real files, the real watcher.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Excludes } from '../../src/main/engine/volume/excludes.js';
import { FileBlockReader } from '../../src/main/engine/volume/file-blocks.js';
import { PathJournal } from '../../src/main/engine/volume/path-journal.js';
import {
  emptySuspects,
  TreeScanner,
  type Suspects,
} from '../../src/main/engine/volume/tree-scanner.js';
import { TreeWatcher } from '../../src/main/engine/volume/tree-watcher.js';
import { VolumeTree } from '../../src/main/engine/volume/volume-tree.js';
import { tempDir } from '../helpers/tmp.js';
import { sleep } from '../helpers/watch.js';

const nowNs = (): bigint => BigInt(Date.now()) * 1_000_000n;

function scanner(root: string, tree: VolumeTree): TreeScanner {
  return new TreeScanner(
    Buffer.from(root),
    tree,
    new Excludes([]),
    new FileBlockReader(64 * 1024, null),
    nowNs,
  );
}

function named(paths: string[]): Suspects {
  return { ...emptySuspects(), named: true, paths: new Set(paths) };
}

/** A tree `a/x.txt`, `a/y.txt` and its recorded state, written a while ago. */
async function baseline(): Promise<{ root: string; tree: VolumeTree }> {
  const root = tempDir();
  fs.mkdirSync(path.join(root, 'a'));
  fs.writeFileSync(path.join(root, 'a', 'x.txt'), 'x1');
  fs.writeFileSync(path.join(root, 'a', 'y.txt'), 'y1');
  const tree = new VolumeTree();
  await scanner(root, tree).scan({ ...emptySuspects(), all: true });
  return { root, tree };
}

describe('a live round proves what it read', () => {
  it('a path changed or gone since the round began is unsettled; older changes are proven', async () => {
    const { root, tree } = await baseline();
    fs.writeFileSync(path.join(root, 'a', 'x.txt'), 'x2');
    fs.rmSync(path.join(root, 'a', 'y.txt'));
    const suspects = ['a/x.txt', 'a/y.txt', 'a'];

    // The round began as the writes were made: nothing it saw is shown to predate it.
    const now = scanner(root, tree);
    now.stableSince = nowNs();
    const report = await now.scan(named(suspects));
    expect([...report.unsettled].sort()).toEqual(suspects.sort());
    expect(now.proven.size).toBe(0);

    // A round beginning well after the writes proves all three: x's new content, y gone, a.
    const later = scanner(root, tree);
    later.stableSince = nowNs() + 1_000_000_000n;
    const again = await later.scan(named(suspects));
    expect([...again.unsettled]).toEqual([]);
    expect([...later.proven].sort()).toEqual(suspects.sort());
    expect(tree.has('a/y.txt')).toBe(false);
    expect(tree.get('a/x.txt')?.size).toBe(2);
  });

  it('a file rewritten while it is read is unsettled, even if its size stays', async () => {
    const { root, tree } = await baseline();
    const s = scanner(root, tree);
    s.stableSince = nowNs() + 1_000_000_000n;
    // chmod moves only the ctime: the entry read before it must not pass as settled.
    const reader = new FileBlockReader(64 * 1024, null);
    reader.onBytes = () => {
      fs.chmodSync(path.join(root, 'a', 'x.txt'), 0o600);
      return undefined;
    };
    const got = await reader.read(Buffer.from(path.join(root, 'a', 'x.txt')));
    expect(got !== 'not-a-file' && got.changedWhileRead).toBe(true);
  });

  it('with names from a watcher a changed folder is not listed; without, it is', async () => {
    for (const fromWatcher of [true, false]) {
      const { root, tree } = await baseline();
      // Made behind the watcher's back: only a listing of `a` can find it.
      fs.writeFileSync(path.join(root, 'a', 'unseen.txt'), 'z');
      fs.appendFileSync(path.join(root, 'a', 'x.txt'), '+');
      const paths = ['a/x.txt', 'a'];
      await scanner(root, tree).scan(
        fromWatcher ? named(paths) : { ...emptySuspects(), paths: new Set(paths) },
      );
      expect(tree.get('a/x.txt')?.size).toBe(3);
      expect(tree.has('a/unseen.txt')).toBe(!fromWatcher);
    }
  });
});

describe('the watcher between rounds', () => {
  it('waits from the round start, not from its end, and loses no event between rounds', async () => {
    const root = tempDir();
    const journal = PathJournal.open(path.join(tempDir(), 'volume.journal'));
    const watcher = await TreeWatcher.start(root, new Excludes([]), journal, []);
    try {
      watcher.roundStart();
      fs.writeFileSync(path.join(root, 'early.txt'), 'e');
      const first = await watcher.roundEnd();
      // A change made just after the start has arrived by the end of the wait.
      expect([...first.paths]).toContain('early.txt');

      // A round that read for longer than the wait does not wait again.
      watcher.roundStart();
      await sleep(400);
      const ended = performance.now();
      await watcher.roundEnd();
      expect(performance.now() - ended).toBeLessThan(100);

      // What arrives after a round's end is what the next round starts with.
      fs.writeFileSync(path.join(root, 'between.txt'), 'b');
      await sleep(400);
      expect([...watcher.roundStart().paths]).toContain('between.txt');
    } finally {
      await watcher.stop();
      journal.close();
    }
  });
  it('a change made just before a round is among what the round knows, round after round', async () => {
    const root = tempDir();
    const journal = PathJournal.open(path.join(tempDir(), 'volume.journal'));
    const watcher = await TreeWatcher.start(root, new Excludes([]), journal, []);
    try {
      for (let i = 0; i < 24; i++) {
        // After a quiet spell the watcher delivers at once, after a busy one it batches: both.
        await sleep(i % 3 === 0 ? 600 : 20);
        fs.writeFileSync(path.join(root, `f${i}`), 'x');
        const before = watcher.roundStart();
        const after = await watcher.roundEnd();
        expect([...before.paths, ...after.paths]).toContain(`f${i}`);
      }
      // On Linux the delivery barrier proves the arrivals sooner than the watcher's timers.
      if (process.platform === 'linux') expect(watcher.roundsEndedByBarrier).toBeGreaterThan(0);
    } finally {
      await watcher.stop();
      journal.close();
    }
  });
  it('leaves no barrier folder behind, and removes those of watchers that were killed', async () => {
    const barriers = (): string[] =>
      fs.readdirSync(os.tmpdir()).filter((n) => n.startsWith(`tidemark-barrier-${process.pid}-`));
    // A process that has ended: its pid names the folder a killed watcher would have left.
    const gone = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
    const orphan = path.join(os.tmpdir(), `tidemark-barrier-${gone.stdout.toString()}-test`);
    fs.mkdirSync(orphan);
    fs.writeFileSync(path.join(orphan, '0'), '');
    const root = tempDir();
    const journal = PathJournal.open(path.join(tempDir(), 'volume.journal'));
    const watcher = await TreeWatcher.start(root, new Excludes([]), journal, []);
    try {
      // Only where there is a barrier (Linux) does a watcher's start look for orphans.
      if (process.platform === 'linux') {
        expect(fs.existsSync(orphan)).toBe(false);
        expect(barriers()).toHaveLength(1);
      }
    } finally {
      await watcher.stop();
      journal.close();
    }
    expect(barriers()).toHaveLength(0);
    fs.rmSync(orphan, { recursive: true, force: true });
  });
  it('under writes without a pause, waits for the delivery that holds what came before the round', async () => {
    const root = tempDir();
    const journal = PathJournal.open(path.join(tempDir(), 'volume.journal'));
    const watcher = await TreeWatcher.start(root, new Excludes([]), journal, []);
    let i = 0;
    // A write every 5 ms: the watcher then delivers only every 500 ms.
    const writer = setInterval(() => fs.writeFileSync(path.join(root, `w${i++}`), 'w'), 5);
    try {
      for (let round = 0; round < 3; round++) {
        await sleep(700 + 130 * round);
        const marker = `marker${round}`;
        fs.writeFileSync(path.join(root, marker), 'm');
        watcher.roundStart();
        const arrived = await watcher.roundEnd();
        expect([...arrived.paths]).toContain(marker);
      }
    } finally {
      clearInterval(writer);
      await watcher.stop();
      journal.close();
    }
  });
});
