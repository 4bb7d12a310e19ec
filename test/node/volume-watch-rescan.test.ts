/**
 * `tidemark watch --rescan-every`: a write the native watcher never reports (through a shared
 * memory map, as LMDB-like databases write) is still recorded, by the periodic metadata rescan.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { tidemark, tidemarkJson } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';
import { sleep, WatchProcess } from '../helpers/watch.js';

const python = spawnSync('python3', ['--version']).status === 0;

/** Rewrites bytes of `file` in place through mmap: inotify sees no event, the mtime moves. */
function writeThroughMap(file: string, at: number, text: string): void {
  const script = [
    'import mmap, sys',
    'f = open(sys.argv[1], "r+b")',
    'm = mmap.mmap(f.fileno(), 0)',
    'at = int(sys.argv[2]); data = sys.argv[3].encode()',
    'm[at:at + len(data)] = data',
    'm.flush(); m.close(); f.close()',
  ].join('\n');
  const r = spawnSync('python3', ['-c', script, file, String(at), text], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`python3 mmap write failed: ${r.stderr}`);
}

describe.skipIf(!python)('tidemark watch --rescan-every', () => {
  it('records a write made through a memory map, which the watcher never reports', async () => {
    const work = tempDir();
    const tree = path.join(work, 'tree');
    const arch = path.join(work, 'arch');
    fs.mkdirSync(tree);
    const db = path.join(tree, 'data.mdb');
    fs.writeFileSync(db, Buffer.alloc(64 * 1024, 'a'));
    expect(tidemark('init', tree, arch, '--no-btrfs-snapshot').code).toBe(0);
    const w = new WatchProcess(arch, '300ms', ['--rescan-every', '2s']);
    try {
      // The first point after start is a rescan; then only the watcher's names are read.
      await w.waitFor((l) => l.changed === false);
      const from = w.lines.length;
      // An mtime in an earlier second than the baseline's: the rescan must see it move.
      await sleep(1100);
      writeThroughMap(db, 1000, 'mapped write');
      const line = (await w.waitFor((l) => l.changed === true, 20_000, from)) as {
        state: { id: number };
      };
      expect(line.state.id).toBe(1);
      const out = path.join(work, 'out');
      expect(tidemark('restore', arch, '--state', '1', '--to', out).code).toBe(0);
      expect(fs.readFileSync(path.join(out, 'data.mdb'))).toEqual(fs.readFileSync(db));
    } finally {
      await w.stop('SIGTERM');
    }
    const states = tidemarkJson<Array<{ id: number }>>('states', arch);
    expect(states.map((s) => s.id)).toEqual([0, 1]);
  }, 60_000);

  it('refuses a --rescan-every that is no duration, in one line', () => {
    const work = tempDir();
    const tree = path.join(work, 'tree');
    fs.mkdirSync(tree);
    const arch = path.join(work, 'arch');
    expect(tidemark('init', tree, arch, '--no-btrfs-snapshot').code).toBe(0);
    const r = tidemark('watch', arch, '--every', '1s', '--rescan-every', 'soon');
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe(
      'tidemark: --rescan-every needs a duration of at least 100ms, like 30s, 5m or 1h (got soon)',
    );
  });
});
