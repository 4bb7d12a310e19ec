import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { tidemarkJson } from '../helpers/cli.js';
import { sha256, tempDir } from '../helpers/tmp.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const BLOCK = 16 * KiB;
const GROUP = 256 * KiB;
const CHUNK = 4 * MiB;

interface State {
  id: number;
  changedBlocks: number;
}

function writeAt(file: string, offset: number, data: Buffer): void {
  const fd = fs.openSync(file, 'r+');
  fs.writeSync(fd, data, 0, data.length, offset);
  fs.closeSync(fd);
}

// Through the compiled CLI, as users run it, on an image of several read chunks.
describe('whole-device scan (CLI)', () => {
  it('finds exactly the changed blocks across chunk, group and partial-block edges', () => {
    const dir = tempDir();
    const image = path.join(dir, 'primary.img');
    const archive = path.join(dir, 'archive');
    // More than one 8 MiB read, a partial last group and a partial last block.
    const size = 3 * CHUNK + 2 * GROUP + 5000;
    const content = Buffer.alloc(size);
    randomBytes(2 * CHUNK).copy(content, 0);
    randomBytes(size - 3 * CHUNK).copy(content, 3 * CHUNK);
    fs.writeFileSync(image, content);
    const copies: string[] = [];
    const keep = (): void => {
      const copy = path.join(dir, `state-${copies.length}.img`);
      fs.copyFileSync(image, copy);
      copies.push(copy);
    };
    const base = tidemarkJson<State>('init', image, archive);
    expect(base.id).toBe(0);
    keep();

    const snapshot = (): { changed: boolean; state?: State } =>
      tidemarkJson<{ changed: boolean; state?: State }>('snapshot', archive);

    // The last byte of the image, in its partial last block.
    writeAt(image, size - 1, Buffer.from([content[size - 1]! ^ 0xff]));
    expect(snapshot().state?.changedBlocks).toBe(1);
    keep();

    // A whole group of random data zeroed: its 16 blocks, and no neighbour.
    writeAt(image, 5 * GROUP, Buffer.alloc(GROUP));
    expect(snapshot().state?.changedBlocks).toBe(GROUP / BLOCK);
    keep();

    // One block of a zero region (chunk 2) and two bytes across the first chunk edge.
    writeAt(image, 2 * CHUNK + 7 * BLOCK, randomBytes(BLOCK));
    writeAt(image, CHUNK - 1, Buffer.from([content[CHUNK - 1]! ^ 0xff, content[CHUNK]! ^ 0xff]));
    expect(snapshot().state?.changedBlocks).toBe(3);
    keep();

    // The group zeroed before is written again with its old content: dedup, yet 16 changes.
    writeAt(image, 5 * GROUP, content.subarray(5 * GROUP, 6 * GROUP));
    expect(snapshot().state?.changedBlocks).toBe(GROUP / BLOCK);
    keep();

    expect(snapshot().changed).toBe(false);

    for (let k = 0; k < copies.length; k++) {
      const to = path.join(dir, `restored-${k}.img`);
      tidemarkJson('restore', archive, '--state', String(k), '--to', to);
      expect(sha256(to), `state ${k}`).toBe(sha256(copies[k]!));
      fs.rmSync(to);
    }
  }, 120_000);
});
