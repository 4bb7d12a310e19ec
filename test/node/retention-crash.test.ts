import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLI } from '../helpers/cli.js';
import { runAndKill } from '../helpers/kill-at.mjs';
import { buildPruneArchive, DROP_ALL_BUT_PINNED, killPruneOnce } from '../helpers/prune-kill.mjs';
import { tempDir } from '../helpers/tmp.js';

// `tidemark prune` SIGKILLed at random moments (test/torture/kill-prune.mjs does it 50+ times):
// every state the prune keeps is still listed and restores byte-identical, so does a dropped
// state a reader still lists, and running the prune again finishes it.

describe('prune killed at random moments', () => {
  it.each([
    ['device', { states: 8, mib: 8, pins: [2, 5] }],
    ['volume', { states: 8, mib: 6, pins: [2, 5] }],
  ] as const)(
    '%s: leaves every kept state restorable and can be redone (4 kills)',
    async (kind, shape) => {
      const dir = tempDir();
      const build = buildPruneArchive(CLI, dir, { ...shape, pins: [...shape.pins], kind });
      expect(build.kept).toEqual([2, 5, 8]);
      // How long an unkilled prune holds the lock.
      const whole = path.join(dir, 'whole');
      execFileSync('cp', ['-a', build.archive, whole]);
      const first = await runAndKill(
        CLI,
        ['prune', whole, ...DROP_ALL_BUT_PINNED],
        { after: 'lock', ms: Infinity },
        whole,
        1e9,
      );
      expect(first.code).toBe(0);
      const span = first.times.endAt - first.times.lockAt;
      // A prune that happens to run faster than the measured one outlives its kill: such rounds
      // are still checked, and more are run (up to 10) until 4 have been killed mid-prune.
      let killed = 0;
      for (let round = 0; round < 10 && killed < 4; round++) {
        const ms = Math.random() * span * 0.6;
        const seen = await killPruneOnce(CLI, build, path.join(dir, `kill-${round}`), ms, {
          thorough: round === 0,
        });
        if (seen.killed) killed++;
      }
      expect(killed).toBeGreaterThanOrEqual(3);
    },
    300_000,
  );
});
