import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { StateInfo, VerifyReport } from '../../src/shared/states.js';
import { tidemark, tidemarkJson } from '../helpers/cli.js';
import { sha256, tempDir } from '../helpers/tmp.js';

const BS = 16384;

function fill(seed: number, length: number): Buffer {
  const b = Buffer.allocUnsafe(length);
  let x = seed;
  for (let i = 0; i < length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

function writeAt(file: string, offset: number, data: Buffer): void {
  const fd = fs.openSync(file, 'r+');
  fs.writeSync(fd, data, 0, data.length, offset);
  fs.closeSync(fd);
}

/** An archive of four states; each later state changes its own blocks only. */
function fourStates(dir: string): { archive: string; copies: string[] } {
  const image = path.join(dir, 'disk.img');
  const archive = path.join(dir, 'archive');
  fs.writeFileSync(image, fill(1, 32 * BS));
  const copies = [sha256(image)];
  expect(tidemark('init', image, archive, '--block-size', String(BS)).code).toBe(0);
  for (let k = 1; k <= 3; k++) {
    writeAt(image, k * 8 * BS, fill(100 + k, BS));
    const snap = tidemark('snapshot', archive);
    expect(snap.code, snap.stderr).toBe(0);
    copies.push(sha256(image));
  }
  return { archive, copies };
}

describe('verify', () => {
  it('passes on an intact archive, shallow and deep', () => {
    const { archive } = fourStates(tempDir());
    const shallow = tidemarkJson<VerifyReport>('verify', archive);
    expect(shallow).toMatchObject({ ok: true, deep: false, updatesChecked: 4, problems: [] });
    expect(shallow.blocksChecked).toBe(32 + 3);
    const deep = tidemarkJson<VerifyReport>('verify', archive, '--deep');
    expect(deep).toMatchObject({ ok: true, deep: true, statesChecked: 4 });
  });

  it('finds one flipped byte in a stored block, names the file and the states it touches; the others restore', () => {
    const dir = tempDir();
    const { archive, copies } = fourStates(dir);
    // Flip one byte inside update 2's only stored block (past the 16-byte header and 48-byte record header).
    const victim = path.join(archive, 'updates', '0000000002.tmu');
    const bytes = fs.readFileSync(victim);
    bytes[16 + 48 + 100]! ^= 0x01;
    fs.writeFileSync(victim, bytes);

    const r = tidemark('verify', archive, '--json');
    expect(r.code).not.toBe(0);
    const report = JSON.parse(r.stdout) as VerifyReport;
    expect(report.ok).toBe(false);
    expect(report.problems).toHaveLength(1);
    expect(report.problems[0]!.file).toBe('updates/0000000002.tmu');
    // Block 16 changed in state 2 and stays so in state 3.
    expect(report.problems[0]!.states).toEqual([2, 3]);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^tidemark: .*0000000002\.tmu/);

    for (const id of [0, 1]) {
      const out = path.join(dir, `r${id}`);
      expect(tidemark('restore', archive, '--state', String(id), '--to', out).code).toBe(0);
      expect(sha256(out)).toBe(copies[id]);
    }
    const bad = tidemark('restore', archive, '--state', '3', '--to', path.join(dir, 'r3'));
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/damaged/);
    expect(fs.existsSync(path.join(dir, 'r3'))).toBe(false);
    // A new file is written unchecked and proven by its read-back; a target written in place gets
    // only checked blocks. Both name the damage.
    const existing = path.join(dir, 'r0');
    const inPlace = tidemark('restore', archive, '--state', '3', '--to', existing, '--force');
    expect(inPlace.code).not.toBe(0);
    expect(inPlace.stderr).toMatch(/0000000002\.tmu: damaged block/);
  });

  it('finds a flipped byte in a block map and names every state built on it', () => {
    const dir = tempDir();
    const { archive, copies } = fourStates(dir);
    const victim = path.join(archive, 'updates', '0000000001.tmu');
    const bytes = fs.readFileSync(victim);
    // The byte before the 80-byte trailer belongs to the meta JSON, covered by the section checksum.
    bytes[bytes.length - 81]! ^= 0x20;
    fs.writeFileSync(victim, bytes);
    const r = tidemark('verify', archive, '--json');
    expect(r.code).not.toBe(0);
    const report = JSON.parse(r.stdout) as VerifyReport;
    expect(report.problems.map((p) => p.file)).toEqual(['updates/0000000001.tmu']);
    expect(report.problems[0]!.states).toEqual([1, 2, 3]);
    const out = path.join(dir, 'r0');
    expect(tidemark('restore', archive, '--state', '0', '--to', out).code).toBe(0);
    expect(sha256(out)).toBe(copies[0]);
  });

  it('finds a flipped byte in a block map frame, names the file and every state built on it', () => {
    const dir = tempDir();
    const { archive, copies } = fourStates(dir);
    const victim = path.join(archive, 'updates', '0000000002.tmu');
    const bytes = fs.readFileSync(victim);
    // Update 2 holds one stored block, then its block map frame.
    const frame = 16 + 48 + bytes.readUInt32LE(16 + 36);
    expect(bytes.readUInt8(frame + 41)).toBe(1);
    bytes[frame + 48 + 3]! ^= 0x04;
    fs.writeFileSync(victim, bytes);
    const r = tidemark('verify', archive, '--json');
    expect(r.code).not.toBe(0);
    const report = JSON.parse(r.stdout) as VerifyReport;
    expect(report.problems.map((p) => p.file)).toEqual(['updates/0000000002.tmu']);
    expect(report.problems[0]!.states).toEqual([2, 3]);
    const out = path.join(dir, 'r1');
    expect(tidemark('restore', archive, '--state', '1', '--to', out).code).toBe(0);
    expect(sha256(out)).toBe(copies[1]);
  });

  it('states --json reports the documented fields', () => {
    const { archive } = fourStates(tempDir());
    const states = tidemarkJson<StateInfo[]>('states', archive);
    expect(states).toHaveLength(4);
    for (const s of states) {
      expect(Object.keys(s).sort()).toEqual([
        'changedBlocks',
        'consistency',
        'id',
        'location',
        'pinned',
        'stateHash',
        'storedBytes',
        'time',
      ]);
      expect(s.location).toBe('secondary');
      expect(new Date(s.time).toISOString()).toBe(s.time);
      expect(s.stateHash).toMatch(/^[0-9a-f]{64}$/);
      expect(s.storedBytes).toBe(
        fs.statSync(path.join(archive, 'updates', `${String(s.id).padStart(10, '0')}.tmu`)).size,
      );
    }
    expect(states[1]!.changedBlocks).toBe(1);
  });
});
