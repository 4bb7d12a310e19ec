import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { StateInfo } from '../../src/shared/states.js';
import { CLI, tidemark, tidemarkJson } from '../helpers/cli.js';
import {
  runAndKill as runAndKillAt,
  updateFile,
  type KillAt,
  type Killed,
} from '../helpers/kill-at.mjs';
import { sha256, tempDir } from '../helpers/tmp.js';

// A snapshot SIGKILLed at any moment (test/torture/kill-snapshot.mjs does the same 50+ times):
// the archive stays whole, every reported state restores, and the next writer cleans up and
// finishes what the killed one committed.

const MIB = 1 << 20;
const IMAGE_BYTES = 32 * MIB;
const BS = 16384;

const runAndKill = (args: string[], kill: KillAt, arch: string, nextId: number): Promise<Killed> =>
  runAndKillAt(CLI, args, kill, arch, nextId);

type SnapshotJson = { changed: true; state: StateInfo } | { changed: false };

/** Random bytes at 1 to 5 random places, now and then zeros (a freed region). */
function mutate(image: string): void {
  const fd = fs.openSync(image, 'r+');
  try {
    const regions = 1 + Math.floor(Math.random() * 5);
    for (let r = 0; r < regions; r++) {
      const length = 1 + Math.floor(Math.random() * (Math.random() < 0.2 ? 64 : 2 * MIB));
      const offset = Math.floor(Math.random() * (IMAGE_BYTES - length));
      const data = r > 0 && Math.random() < 0.25 ? Buffer.alloc(length) : randomBytes(length);
      fs.writeSync(fd, data, 0, length, offset);
    }
  } finally {
    fs.closeSync(fd);
  }
}

/** 32 MiB: random data with two zero regions, [6, 10) and [18, 24) MiB. */
function makeImage(image: string): void {
  const fd = fs.openSync(image, 'w');
  try {
    for (const [from, to] of [
      [0, 6],
      [10, 18],
      [24, 32],
    ] as const) {
      fs.writeSync(fd, randomBytes((to - from) * MIB), 0, (to - from) * MIB, from * MIB);
    }
    fs.ftruncateSync(fd, IMAGE_BYTES);
  } finally {
    fs.closeSync(fd);
  }
}

function incompleteFiles(dir: string): string[] {
  return fs
    .readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((name) => name.includes('incomplete'));
}

/** What a killed snapshot left behind, for the assertion messages. */
function phaseOf(arch: string, nextId: number, result: Killed): string {
  if (!result.killed) return 'not killed (finished first)';
  if (!fs.existsSync(path.join(arch, 'lock'))) return 'killed before taking the lock';
  if (fs.existsSync(path.join(arch, 'updates', updateFile(nextId)))) {
    return 'killed after committing its update';
  }
  if (incompleteFiles(arch).length > 0) return 'killed while writing its update';
  return 'killed while scanning';
}

describe('a snapshot killed at a random moment', () => {
  it('leaves a whole archive: verify passes, reported states restore, the next snapshot finishes the job', async () => {
    const dir = tempDir();
    const image = path.join(dir, 'disk.img');
    const arch = path.join(dir, 'archive');
    makeImage(image);
    tidemarkJson('init', image, arch, '--block-size', String(BS));

    /** sha256 of the image copy saved for each state. */
    const copies = new Map<number, string>();
    const keepCopy = (id: number): void => {
      const copy = path.join(dir, `state-${id}.img`);
      fs.copyFileSync(image, copy);
      copies.set(id, sha256(copy));
    };
    let restores = 0;
    const restoresIdentical = (id: number, why: string): void => {
      const target = path.join(dir, `restored-${restores++}.img`);
      const report = tidemarkJson<{ verified: boolean }>(
        'restore',
        arch,
        '--state',
        String(id),
        '--to',
        target,
      );
      expect(report.verified, `state ${id} ${why}`).toBe(true);
      expect(sha256(target), `state ${id} restored ${why}`).toBe(copies.get(id));
      fs.rmSync(target);
    };
    keepCopy(0);
    const reported = new Set([0]);

    // One unkilled snapshot, watched: when it takes the lock, commits, ends.
    mutate(image);
    keepCopy(1);
    const first = await runAndKill(
      ['snapshot', arch, '--json'],
      { ms: 60_000, after: 'start' },
      arch,
      1,
    );
    expect(first.code, first.stderr).toBe(0);
    expect(JSON.parse(first.stdout)).toMatchObject({ changed: true, state: { id: 1 } });
    reported.add(1);
    const { lockAt, commitAt, endAt } = first.times;
    expect(lockAt < commitAt && commitAt <= endAt, JSON.stringify(first.times)).toBe(true);

    // Kills: during the scan and write; right after the update was committed (before or after
    // the catalog recorded it); at any moment at all.
    const uniform = (from: number, to: number): number =>
      Math.max(1, Math.round(from + Math.random() * (to - from)));
    const work = commitAt - lockAt;
    const kills: KillAt[] = [
      { ms: uniform(0, work), after: 'lock' },
      { ms: uniform(0, 3), after: 'commit' },
      { ms: uniform(5, endAt * 1.1), after: 'start' },
    ];
    for (const [round, kill] of kills.entries()) {
      const nextId = round + 2;
      mutate(image);
      keepCopy(nextId);
      const result = await runAndKill(['snapshot', arch, '--json'], kill, arch, nextId);
      const seen = `lock ${Math.round(lockAt)}, commit ${Math.round(commitAt)}, end ${Math.round(endAt)} ms`;
      const phase = `round ${round}, kill ${kill.ms} ms after ${kill.after} (unkilled: ${seen}): ${phaseOf(arch, nextId, result)}`;
      if (!result.killed) expect(result.code, `${phase}: ${result.stderr}`).toBe(0);
      if (result.stdout.trim()) {
        // It printed its state before dying: that state was reported and must survive.
        expect(JSON.parse(result.stdout), phase).toMatchObject({
          changed: true,
          state: { id: nextId },
        });
        reported.add(nextId);
      }

      // A reader (before any writer cleaned up) sees a whole archive...
      const verify = tidemark('verify', arch, '--json');
      expect(verify.code, `${phase}: verify ${verify.stdout}${verify.stderr}`).toBe(0);
      const listed = tidemarkJson<StateInfo[]>('states', arch).map((s) => s.id);
      for (const id of reported) expect(listed, phase).toContain(id);
      // ...with every state reported so far restorable, byte for byte.
      for (const id of listed) reported.add(id);
      for (const id of reported) restoresIdentical(id, `after the kill (${phase})`);

      // The next writer is not locked out, removes the leftovers and records the pending change,
      // unless the killed snapshot had committed it already.
      const next = tidemark('snapshot', arch, '--json');
      expect(next.code, `${phase}: next snapshot: ${next.stderr}`).toBe(0);
      const out = JSON.parse(next.stdout) as SnapshotJson;
      if (listed.includes(nextId)) expect(out, phase).toEqual({ changed: false });
      else expect(out, phase).toMatchObject({ changed: true, state: { id: nextId } });
      reported.add(nextId);
      expect(incompleteFiles(arch), phase).toEqual([]);
      expect(fs.existsSync(path.join(arch, 'lock')), `${phase}: lock left`).toBe(false);
      expect(copies.get(nextId)).toBe(sha256(image));
      restoresIdentical(nextId, `by the snapshot after the kill (${phase})`);
    }

    const deep = tidemark('verify', arch, '--deep', '--json');
    expect(deep.code, deep.stdout + deep.stderr).toBe(0);
    expect(tidemarkJson<StateInfo[]>('states', arch).map((s) => s.id)).toEqual([0, 1, 2, 3, 4]);
  });
});
