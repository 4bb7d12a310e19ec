import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { RestoreReport, StateInfo } from '../../src/shared/states.js';
import { tidemark, tidemarkJson } from '../helpers/cli.js';
import { rootSkipReason, sh } from '../helpers/root.js';
import { sha256, tempDir } from '../helpers/tmp.js';

const skip = rootSkipReason();
const attached: string[] = [];
const mounted: string[] = [];

afterEach(() => {
  for (const m of mounted.splice(0).reverse()) sh('umount', [m]);
  for (const dev of attached.splice(0)) sh('losetup', ['-d', dev]);
});

function attach(file: string): string {
  const dev = sh('losetup', ['--find', '--show', file]).trim();
  attached.push(dev);
  return dev;
}

/** sha256 of a whole block device (readFileSync reads to the end; its size is not in stat). */
function readDevice(dev: string): string {
  return createHash('sha256').update(fs.readFileSync(dev)).digest('hex');
}

describe.skipIf(skip)(`a real block device as primary${skip ? ` (skipped: ${skip})` : ''}`, () => {
  it('archives an ext4 loop device, restores each state to a file and rolls the device back', () => {
    const dir = tempDir();
    const image = path.join(dir, 'disk.img');
    fs.writeFileSync(image, Buffer.alloc(0));
    fs.truncateSync(image, 32 << 20);
    sh('mkfs.ext4', ['-q', '-F', image]);
    const dev = attach(image);
    const archive = path.join(dir, 'archive');
    const mnt = path.join(dir, 'mnt');
    fs.mkdirSync(mnt);

    const init = tidemark('init', dev, archive, '--block-size', '16384');
    expect(init.code, init.stderr).toBe(0);
    const sums = [readDevice(dev)];

    // Change the filesystem through the kernel, unmount, then end the interval.
    sh('mount', [dev, mnt]);
    mounted.push(mnt);
    fs.writeFileSync(path.join(mnt, 'hello.txt'), 'hello from state 1\n'.repeat(1000));
    fs.mkdirSync(path.join(mnt, 'docs'));
    fs.writeFileSync(path.join(mnt, 'docs', 'big.bin'), Buffer.alloc(3 << 20, 7));

    // An archive on the primary itself would archive its own writes forever: refused.
    const onItself = tidemark('init', dev, path.join(mnt, 'archive'));
    expect(onItself.code).not.toBe(0);
    expect(onItself.stderr).toMatch(/^tidemark: .*lies on .* itself/);
    expect(fs.existsSync(path.join(mnt, 'archive'))).toBe(false);

    // While it is mounted read-write, a state is recorded but graded inconsistent, with the reason.
    const live = tidemarkJson<{ changed: boolean; state: StateInfo }>('snapshot', archive);
    expect(live.state.consistency).toBe('none');
    expect(live.state.consistencyReason).toMatch(/mounted read-write/);

    sh('umount', [mnt]);
    mounted.pop();
    const quiet = tidemarkJson<{ changed: boolean; state?: StateInfo }>('snapshot', archive);
    if (quiet.changed) expect(quiet.state!.consistency).toBe('quiescent');
    sums.push(readDevice(dev));
    const states = tidemarkJson<StateInfo[]>('states', archive);
    const last = states[states.length - 1]!;

    const out = path.join(dir, 'restored.img');
    const r = tidemarkJson<RestoreReport>(
      'restore',
      archive,
      '--state',
      String(last.id),
      '--to',
      out,
    );
    expect(r.verified).toBe(true);
    expect(sha256(out)).toBe(sums[1]);

    // Rolling the device itself back needs --rollback and writes only what differs.
    const refused = tidemark('restore', archive, '--state', '0', '--to', dev);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/^tidemark: .*--rollback/);
    const back = tidemarkJson<RestoreReport>(
      'restore',
      archive,
      '--state',
      '0',
      '--to',
      dev,
      '--rollback',
    );
    expect(back.blocksWritten).toBeGreaterThan(0);
    expect(back.blocksWritten).toBeLessThan((32 << 20) / 16384 / 2);
    expect(readDevice(dev)).toBe(sums[0]);

    // A mounted device is never written.
    sh('mount', ['-o', 'ro', dev, mnt]);
    mounted.push(mnt);
    const busy = tidemark(
      'restore',
      archive,
      '--state',
      String(last.id),
      '--to',
      dev,
      '--rollback',
    );
    expect(busy.code).not.toBe(0);
    expect(busy.stderr).toMatch(/mounted/);
  });
});
