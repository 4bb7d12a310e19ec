#!/usr/bin/env node
// Kill torture for retention (not run in CI; takes several minutes):
//
//   npx tsc -p tsconfig.node.json && node test/torture/kill-prune.mjs [RUNS=50]
//
// Builds a device archive (16 MiB image, 12 intervals, states 3 and 7 pinned; TORTURE_KIND=volume:
// a folder archive of a 16 MiB tree), measures how long
// an unkilled `tidemark prune` (drop everything but the newest and the pinned states) holds the
// archive lock, then RUNS times: copies the archive, starts the prune and SIGKILLs it at a random
// moment of that span (a tenth of the runs right after the lock, where it reads, the others
// anywhere: writing a collapsed update, between its commit and its catalog record, while it
// deletes what it replaced). After each kill, before any writer ran: the kept states are listed
// and restore byte-identical, and so does a dropped state a reader still lists. Then the prune is
// run again: exactly the kept states remain, nothing superseded or incomplete is left; every 5th
// run also restores them again and runs a deep verify. Prints one summary line; exits 1 on the
// first failure (TORTURE_KEEP=1 keeps the folder).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { runAndKill } from '../helpers/kill-at.mjs';
import { buildPruneArchive, DROP_ALL_BUT_PINNED, killPruneOnce } from '../helpers/prune-kill.mjs';

const CLI = path.resolve(
  process.env.TIDEMARK_CLI ?? path.join(import.meta.dirname, '../../bin/tidemark.js'),
);
const RUNS = Number(process.argv[2] ?? 50);
// TORTURE_KIND=volume: the same on a folder archive (a tree of about 16 MiB, 8 files).
const KIND = process.env.TORTURE_KIND === 'volume' ? 'volume' : 'device';
if (!Number.isInteger(RUNS) || RUNS < 1) {
  console.error('usage: node test/torture/kill-prune.mjs [RUNS=50]');
  process.exit(2);
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tidemark-kill-prune-'));
const started = Date.now();
let killed = 0;
let droppedListed = 0;
try {
  const build = buildPruneArchive(CLI, dir, { states: 12, mib: 16, pins: [3, 7], kind: KIND });
  const whole = path.join(dir, 'whole');
  execFileSync('cp', ['-a', build.archive, whole]);
  const first = await runAndKill(
    CLI,
    ['prune', whole, ...DROP_ALL_BUT_PINNED],
    { after: 'lock', ms: Infinity },
    whole,
    1e9,
  );
  if (first.code !== 0) throw new Error(`unkilled prune failed: ${first.stderr}`);
  const span = first.times.endAt - first.times.lockAt;
  for (let run = 0; run < RUNS; run++) {
    const ms = run % 10 === 0 ? Math.random() * 20 : Math.random() * span;
    const work = path.join(dir, 'work');
    const seen = await killPruneOnce(CLI, build, work, ms, { thorough: run % 5 === 0 });
    if (seen.killed) killed++;
    if (seen.listedAfterKill.length > build.kept.length) droppedListed++;
    if (process.env.TORTURE_VERBOSE === '1')
      console.log(
        `run ${run}: kill at ${ms.toFixed(0)} ms, killed ${seen.killed}, listed ${seen.listedAfterKill}`,
      );
  }
  console.log(
    `kill-prune (${KIND}): ${RUNS} runs, ${killed} killed mid-prune (${droppedListed} left dropped states listed, finished by the redo), every kept state restored identical, prune span ${span.toFixed(0)} ms, ${((Date.now() - started) / 1000).toFixed(0)} s`,
  );
  if (process.env.TORTURE_KEEP !== '1') fs.rmSync(dir, { recursive: true, force: true });
} catch (err) {
  console.error(`kill-prune FAILED after ${killed} kills: ${err.message} (folder kept: ${dir})`);
  process.exit(1);
}
