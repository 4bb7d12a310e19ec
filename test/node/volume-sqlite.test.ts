/**
 * A SQLite database in WAL mode written continuously inside the tree while `watch` runs: every
 * state graded consistent restores a database that passes PRAGMA integrity_check.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { tidemark, tidemarkJson } from '../helpers/cli.js';
import { checkDatabase, startSqliteWriter, stopProcess } from '../helpers/sqlite-check.js';
import { tempDir } from '../helpers/tmp.js';
import { sleep, WatchProcess } from '../helpers/watch.js';

type State = { id: number; consistency: string; consistencyReason?: string };

describe('a live SQLite database under watch', () => {
  it('every state graded consistent restores a database passing integrity_check', async () => {
    const work = tempDir();
    const tree = path.join(work, 'tree');
    const arch = path.join(work, 'arch');
    fs.mkdirSync(path.join(tree, 'app'), { recursive: true });
    fs.writeFileSync(path.join(tree, 'notes.txt'), 'hello');
    const writer = await startSqliteWriter(path.join(tree, 'app', 'data.sqlite'), 900, 700);
    let w: WatchProcess | null = null;
    try {
      expect(tidemark('init', tree, arch, '--no-btrfs-snapshot').code).toBe(0);
      w = new WatchProcess(arch, '500ms');
      await sleep(9000);
    } finally {
      await stopProcess(writer);
      if (w) expect((await w.stop()).code).toBe(0);
    }
    const states = tidemarkJson<State[]>('states', arch);
    const consistent = states.filter((s) => s.id > 0 && s.consistency !== 'none');
    // The writer pauses 0.7 s every 0.9 s: some points must find the tree quiet.
    expect(consistent.length, JSON.stringify(states)).toBeGreaterThanOrEqual(2);
    for (const s of states.filter((x) => x.consistency === 'none'))
      expect(s.consistencyReason).toMatch(/kept changing/);
    for (const s of consistent) {
      const out = path.join(work, `db-${s.id}`);
      const r = tidemark('restore', arch, '--state', String(s.id), '--path', 'app', '--to', out);
      expect(r.code, r.stderr).toBe(0);
      const check = checkDatabase(path.join(out, 'data.sqlite'));
      expect(check.integrity, `state ${s.id}`).toBe('ok');
      expect(check.rows).toBeGreaterThan(0);
    }
  }, 60_000);
});
