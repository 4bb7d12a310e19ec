/**
 * A tree on a real, loop-mounted btrfs: every point is read from a read-only snapshot and graded
 * `snapshot`, even while a database is written without pause; each such state restores a
 * database passing integrity_check, and no snapshot is left behind.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { tidemark, tidemarkJson } from '../helpers/cli.js';
import { rootSkipReason, sh } from '../helpers/root.js';
import { startBusyAppender } from '../helpers/busy-writer.js';
import { checkDatabase, startSqliteWriter, stopProcess } from '../helpers/sqlite-check.js';
import { tempDir } from '../helpers/tmp.js';
import { sleep } from '../helpers/watch.js';

function btrfsSkipReason(): string | null {
  const root = rootSkipReason();
  if (root) return root;
  try {
    sh('mkfs.btrfs', ['--version']);
    return null;
  } catch {
    return 'needs mkfs.btrfs (apt-get install btrfs-progs)';
  }
}

const skip = btrfsSkipReason();
const mounted: string[] = [];
const attached: string[] = [];

afterEach(() => {
  for (const m of mounted.splice(0).reverse()) sh('umount', [m]);
  for (const dev of attached.splice(0)) sh('losetup', ['-d', dev]);
});

type State = { id: number; consistency: string; changedFiles: number };

describe.skipIf(skip)(`a tree on btrfs${skip ? ` (skipped: ${skip})` : ''}`, () => {
  it('reads every point from a read-only snapshot: graded snapshot, restorable while written', async () => {
    const dir = tempDir();
    const image = path.join(dir, 'btrfs.img');
    fs.writeFileSync(image, Buffer.alloc(0));
    fs.truncateSync(image, 1 << 30);
    sh('mkfs.btrfs', ['-q', '-f', image]);
    const dev = sh('losetup', ['--find', '--show', image]).trim();
    attached.push(dev);
    const mnt = path.join(dir, 'mnt');
    fs.mkdirSync(mnt);
    sh('mount', [dev, mnt]);
    mounted.push(mnt);
    const tree = path.join(mnt, 'home');
    fs.mkdirSync(path.join(tree, 'app'), { recursive: true });
    fs.writeFileSync(path.join(tree, 'a.txt'), 'on btrfs');
    const arch = path.join(dir, 'arch');

    // Written without any pause: only a snapshot can give consistent points.
    const writer = await startSqliteWriter(path.join(tree, 'app', 'data.sqlite'), 0, 0, 40);
    try {
      const init = tidemarkJson<State>('init', tree, arch);
      expect(init.consistency).toBe('snapshot');
      for (let i = 0; i < 3; i++) {
        await sleep(400);
        const r = tidemarkJson<{ changed: boolean; state: State }>('snapshot', arch);
        expect(r.changed).toBe(true);
        expect(r.state.consistency).toBe('snapshot');
      }
    } finally {
      await stopProcess(writer);
    }
    // No snapshot is left behind, and none was captured into the tree.
    expect(fs.readdirSync(mnt).filter((n) => n.startsWith('.tidemark-snapshot'))).toEqual([]);
    const states = tidemarkJson<State[]>('states', arch);
    expect(states).toHaveLength(4);
    for (const s of states) {
      const out = path.join(dir, `out-${s.id}`);
      const r = tidemark('restore', arch, '--state', String(s.id), '--to', out);
      expect(r.code, r.stderr).toBe(0);
      expect(fs.readFileSync(path.join(out, 'a.txt'), 'utf8')).toBe('on btrfs');
      expect(checkDatabase(path.join(out, 'app', 'data.sqlite')).integrity).toBe('ok');
    }
    // Without snapshots the same tree is graded by quiet, and a writer with no pause at all
    // never lets it be quiet.
    const busy = await startBusyAppender(path.join(tree, 'app', 'busy.log'));
    try {
      const r = tidemarkJson<{ changed: boolean; state: State & { consistencyReason?: string } }>(
        'snapshot',
        arch,
        '--no-btrfs-snapshot',
      );
      expect(r.state.consistency).toBe('none');
      expect(r.state.consistencyReason).toMatch(/kept changing while it was read/);
    } finally {
      await stopProcess(busy);
    }

    // A drive protected at its mount point: unmounted, its empty mount point is not read as a
    // tree whose files were all deleted.
    const whole = path.join(dir, 'arch-whole');
    expect(tidemarkJson<State>('init', mnt, whole).consistency).toBe('snapshot');
    sh('umount', [mnt]);
    mounted.splice(mounted.indexOf(mnt), 1);
    const r = tidemark('snapshot', whole);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /^tidemark: .*mnt was a mounted drive and nothing is mounted there now/,
    );
    expect(tidemarkJson<State[]>('states', whole)).toHaveLength(1);
  }, 120_000);
});
