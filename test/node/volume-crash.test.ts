/**
 * A volume point killed at any instant (SIGKILL) leaves an archive that verifies, whose committed
 * states restore, and whose next point records the tree as it is.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { StateInfo } from '../../src/shared/states.js';
import { CLI, tidemark, tidemarkJson } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';
import { copyTree, describeTree, prng, randomBytes, treeDifferences } from '../helpers/tree.js';
import { sleep } from '../helpers/watch.js';

function snapshotKilledAfter(arch: string, ms: number): Promise<void> {
  const child = spawn(process.execPath, [CLI, 'snapshot', arch], { stdio: 'ignore' });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return sleep(ms).then(() => {
    child.kill('SIGKILL');
    return exited;
  });
}

describe('a volume point killed midway', () => {
  it('leaves a whole archive; the next point records the tree as it is', async () => {
    const work = tempDir();
    const tree = path.join(work, 'tree');
    const arch = path.join(work, 'arch');
    const rand = prng(3);
    fs.mkdirSync(tree);
    for (let i = 0; i < 300; i++)
      fs.writeFileSync(path.join(tree, `f${i}`), randomBytes(rand, 5000));
    expect(tidemark('init', tree, arch).code).toBe(0);
    for (const [k, ms] of [80, 200, 350, 600].entries()) {
      // Enough new content that the point is still writing when it is killed.
      fs.writeFileSync(path.join(tree, `big${k}.bin`), randomBytes(rand, 24 << 20));
      for (let i = 0; i < 50; i++)
        fs.appendFileSync(path.join(tree, `f${(k * 50 + i) % 300}`), `${k}`);
      await snapshotKilledAfter(arch, ms);
      const verify = tidemark('verify', arch, '--deep');
      expect(verify.code, verify.stdout + verify.stderr).toBe(0);
    }
    const r = tidemarkJson<{ changed: boolean }>('snapshot', arch);
    copyTree(tree, path.join(work, 'ref'));
    const states = tidemarkJson<StateInfo[]>('states', arch);
    expect(r.changed || states.length > 1).toBe(true);
    const last = states[states.length - 1]!;
    const out = path.join(work, 'out');
    expect(tidemark('restore', arch, '--state', String(last.id), '--to', out).code).toBe(0);
    expect(treeDifferences(describeTree(path.join(work, 'ref')), describeTree(out))).toEqual([]);
    expect(fs.readdirSync(arch).filter((n) => n.includes('.incomplete-'))).toEqual([]);
    expect(
      fs.readdirSync(path.join(arch, 'updates')).filter((n) => n.includes('.incomplete-')),
    ).toEqual([]);
  }, 120_000);
});
