import { randomFillSync } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PruneReport } from '../../src/shared/retention.js';
import type { StateInfo } from '../../src/shared/states.js';
import { tidemarkWith } from '../helpers/cli.js';
import { rgwSkipReason, startRgw, type Rgw } from '../helpers/rgw.js';
import { sha256, tempDir } from '../helpers/tmp.js';
import { describeTree, treeDifferences } from '../helpers/tree.js';

// Two machines (two state dirs, so two catalogs) on one archive: one prunes, and the other's
// catalog, which still names the collapsed and deleted updates, must follow the archive before
// it lists, restores, verifies or records a state. A snapshot that found a block in a deleted
// update through a stale catalog recorded a state that no longer restores: silent data loss.

const BS = 16384;
const BLOCKS = 64;
const PASSPHRASE = 'catalog sync';
const FAR = ['--now', '2031-01-01T00:00:00Z', '--keep-weekly', '0'];

function writeBlock(image: string, block: number, content: Buffer): void {
  const fd = fs.openSync(image, 'r+');
  fs.writeSync(fd, content, 0, content.length, block * BS);
  fs.closeSync(fd);
}

/** The CLI as run on machine `name`: its own state dir under `dir`, so its own catalog. */
function machines(dir: string, base: NodeJS.ProcessEnv) {
  const run = (machine: string, ...args: string[]): string => {
    const env = {
      ...base,
      TIDEMARK_STATE_DIR: path.join(dir, machine),
      TIDEMARK_PASSPHRASE: PASSPHRASE,
    };
    const r = tidemarkWith(env, ...args);
    expect(r.code, `${machine}: tidemark ${args.join(' ')}: ${r.stderr}`).toBe(0);
    return r.stdout;
  };
  const json = <T>(machine: string, ...args: string[]): T =>
    JSON.parse(run(machine, ...args, '--json')) as T;
  return { run, json };
}

/**
 * A records states 0..3 (state 1 alone stores block P), B records state 4, A pins 3 and prunes
 * (0..2 are integrated into 3; P goes), then B lists, restores, verifies, and records P again.
 */
function twoMachines(dir: string, archive: string, base: NodeJS.ProcessEnv, init: string[]): void {
  const { run, json } = machines(dir, base);
  const image = path.join(dir, 'disk.img');
  fs.writeFileSync(image, randomFillSync(Buffer.alloc(BLOCKS * BS)));
  const p = randomFillSync(Buffer.alloc(BS));
  const digests = new Map<number, string>();

  run('a', 'init', image, archive, '--block-size', String(BS), ...init);
  digests.set(0, sha256(image));
  const changes: Array<[string, number, Buffer]> = [
    ['a', 3, p],
    ['a', 3, randomFillSync(Buffer.alloc(BS))],
    ['a', 10, randomFillSync(Buffer.alloc(BS))],
    ['b', 20, randomFillSync(Buffer.alloc(BS))],
  ];
  for (const [machine, block, content] of changes) {
    writeBlock(image, block, content);
    const { state } = json<{ state: StateInfo }>(machine, 'snapshot', archive);
    digests.set(state.id, sha256(image));
  }
  expect(json<StateInfo[]>('b', 'states', archive).map((s) => s.id)).toEqual([0, 1, 2, 3, 4]);

  run('a', 'pin', archive, '3');
  const pruned = json<PruneReport>('a', 'prune', archive, ...FAR);
  expect(pruned.runs.map((r) => r.update)).toEqual(['updates/0000000003-0000000000.tmu']);

  // B's catalog still names updates 0..3, which are gone.
  expect(json<StateInfo[]>('b', 'states', archive).map((s) => s.id)).toEqual([3, 4]);
  for (const id of [3, 4]) {
    const out = path.join(dir, `b${id}.img`);
    run('b', 'restore', archive, '--state', String(id), '--to', out);
    expect(sha256(out), `state ${id} restored by B`).toBe(digests.get(id));
  }
  expect(json<{ ok: boolean }>('b', 'verify', archive, '--deep').ok).toBe(true);

  // P again: stored only in the deleted update of state 1; B must store it anew.
  writeBlock(image, 30, p);
  const { state } = json<{ state: StateInfo }>('b', 'snapshot', archive);
  expect(state.id).toBe(5);
  digests.set(5, sha256(image));
  // Restored by B, and by a machine that knows nothing but the archive.
  for (const machine of ['b', 'fresh']) {
    const out = path.join(dir, `${machine}5.img`);
    run(machine, 'restore', archive, '--state', '5', '--to', out);
    expect(sha256(out), `state 5 restored by ${machine}`).toBe(digests.get(5));
  }
  expect(json<{ ok: boolean }>('fresh', 'verify', archive, '--deep').ok).toBe(true);
  expect(json<StateInfo[]>('a', 'states', archive).map((s) => s.id)).toEqual([3, 4, 5]);
}

describe('two catalogs on one archive, one of them pruning', () => {
  it('a folder archive (encrypted: each machine keeps its own catalog)', () => {
    const dir = tempDir();
    twoMachines(dir, path.join(dir, 'arch'), process.env, ['--encrypt']);
  }, 120_000);

  it('a volume archive: states, restore, diff, verify, and a point that stores P again', () => {
    const dir = tempDir();
    const { run, json } = machines(dir, process.env);
    const tree = path.join(dir, 'tree');
    const arch = path.join(dir, 'arch');
    const flags = ['--no-btrfs-snapshot'];
    fs.mkdirSync(tree);
    fs.writeFileSync(path.join(tree, 'a.txt'), 'first\n');
    const p = randomFillSync(Buffer.alloc(200_000));
    const trees = new Map<number, ReturnType<typeof describeTree>>();
    run('a', 'init', tree, arch, '--encrypt', ...flags);
    trees.set(0, describeTree(tree));
    const changes: Array<[string, () => void]> = [
      ['a', () => fs.writeFileSync(path.join(tree, 'p.bin'), p)],
      ['a', () => fs.rmSync(path.join(tree, 'p.bin'))],
      ['a', () => fs.appendFileSync(path.join(tree, 'a.txt'), 'second\n')],
      ['b', () => fs.writeFileSync(path.join(tree, 'b.txt'), 'from b\n')],
    ];
    for (const [machine, change] of changes) {
      change();
      const { state } = json<{ state: StateInfo }>(machine, 'snapshot', arch, ...flags);
      trees.set(state.id, describeTree(tree));
    }
    expect(json<StateInfo[]>('b', 'states', arch).map((s) => s.id)).toEqual([0, 1, 2, 3, 4]);
    run('a', 'pin', arch, '3');
    json<PruneReport>('a', 'prune', arch, ...FAR);

    expect(json<StateInfo[]>('b', 'states', arch).map((s) => s.id)).toEqual([3, 4]);
    for (const id of [3, 4]) {
      const out = path.join(dir, `b${id}`);
      run('b', 'restore', arch, '--state', String(id), '--to', out);
      expect(treeDifferences(trees.get(id)!, describeTree(out)), `state ${id}`).toEqual([]);
    }
    expect(run('b', 'diff', arch, '3', '4')).toContain('b.txt');
    expect(json<{ ok: boolean }>('b', 'verify', arch, '--deep').ok).toBe(true);
    fs.writeFileSync(path.join(tree, 'p-again.bin'), p);
    expect(json<{ state: StateInfo }>('b', 'snapshot', arch, ...flags).state.id).toBe(5);
    for (const machine of ['b', 'fresh']) {
      const out = path.join(dir, `${machine}5`);
      run(machine, 'restore', arch, '--state', '5', '--to', out);
      expect(treeDifferences(describeTree(tree), describeTree(out)), machine).toEqual([]);
    }
  }, 120_000);
});

const skip = rgwSkipReason();
if (skip) console.warn(`S3 catalog sync tests skipped: ${skip}`);

describe.skipIf(skip !== null)('two catalogs on one s3:// archive (Ceph RGW)', () => {
  let rgw: Rgw;
  beforeAll(() => {
    rgw = startRgw('catalogsync', 7498, 3398);
  });
  afterAll(() => rgw?.stop());

  it('one machine prunes, the other follows', () => {
    twoMachines(tempDir(), 's3://tidemark-dev/catalog-sync/disk', rgw.env, []);
  }, 180_000);
});
