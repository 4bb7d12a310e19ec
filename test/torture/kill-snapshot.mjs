#!/usr/bin/env node
// Kill torture for the device-mode engine (not run in CI; takes a few minutes):
//
//   npx tsc -p tsconfig.node.json && node test/torture/kill-snapshot.mjs [RUNS=50]
//
// Env: TORTURE_SEED=N replays the same changed regions and kill choices (timings still vary);
// TORTURE_KEEP=1 keeps the temp folder; TORTURE_VERBOSE=1 prints every kill;
// TIDEMARK_CLI=path/to/bin/tidemark.js tests another build.
//
// On a real 48 MiB image file, every run changes random regions of the image, keeps a copy of it,
// starts `tidemark snapshot --json` and SIGKILLs it after a random delay counted from its start
// (up to a little more than the last unkilled snapshot took), from the moment it took the archive
// lock (anywhere in its work, or near the end of it), or from the moment its update appeared under
// its final name (0-10 ms). So kills land before the lock, during the scan, while the update is
// written, between its commit and its catalog record, and after. After each kill: `verify` passes (a reader, before any writer cleaned
// up); `states` still lists every state reported so far; the states at risk (the new one if it was
// committed, the one before, and one at random) restore byte-identical to their copies; a plain
// snapshot records the pending change (or finds that the killed one committed it) and its state
// restores identical to the image; no `*incomplete*` file or stale lock is left once a writer ran.
// At the end, a deep verify and every state restored. Every run also kills a `restore` at a random
// moment (to a new file, or rolling back an existing copy of the image): the archive must be
// untouched, verify ok, a new file must appear only whole, and the same restore run again must
// succeed and leave nothing next to the target.
// Prints one summary line; exits 1 on the first failure with its details (the folder is kept).
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { runAndKill as runAndKillAt, updateFile } from '../helpers/kill-at.mjs';

const CLI = path.resolve(
  process.env.TIDEMARK_CLI ?? path.join(import.meta.dirname, '../../bin/tidemark.js'),
);
const RUNS = Number(process.argv[2] ?? 50);
const SEED = Number(process.env.TORTURE_SEED ?? Math.floor(Math.random() * 2 ** 31));
const VERBOSE = process.env.TORTURE_VERBOSE === '1';
const MIB = 1 << 20;
const IMAGE_BYTES = 48 * MIB;
const BLOCK_SIZE = 16384;

if (!Number.isInteger(RUNS) || RUNS < 1) {
  console.error('usage: node test/torture/kill-snapshot.mjs [RUNS=50]');
  process.exit(2);
}

// mulberry32: a small seeded generator, so a failing run can be replayed with TORTURE_SEED.
let seedState = SEED >>> 0;
function random() {
  seedState = (seedState + 0x6d2b79f5) >>> 0;
  let t = seedState;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const between = (lo, hi) => lo + Math.floor(random() * (hi - lo + 1));

class Failure extends Error {}
function check(condition, message, details) {
  if (!condition) {
    const e = new Failure(message);
    e.details = details;
    throw e;
  }
}

function sha256(file) {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

function cli(...args) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
  return { code: r.status ?? -1, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

function cliJson(...args) {
  const r = cli(...args, '--json');
  check(r.code === 0, `tidemark ${args.join(' ')} exited ${r.code}`, r.stderr || r.stdout);
  return JSON.parse(r.stdout);
}

function runAndKill(args, kill, nextId) {
  return runAndKillAt(CLI, args, kill, arch, nextId);
}

function incompleteFiles(dir) {
  const found = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (e.name.includes('incomplete')) found.push(path.join(e.parentPath ?? e.path, e.name));
  }
  return found;
}

function updateFiles(arch) {
  return fs.readdirSync(path.join(arch, 'updates')).filter((n) => /^\d{10}\.tmu$/.test(n));
}

/** State ids the catalog has recorded, read from a copy so that the archive itself is not touched. */
function recordedIds(arch, scratch) {
  fs.rmSync(scratch, { recursive: true, force: true });
  fs.mkdirSync(scratch);
  for (const name of ['catalog.sqlite', 'catalog.sqlite-journal']) {
    if (fs.existsSync(path.join(arch, name)))
      fs.copyFileSync(path.join(arch, name), path.join(scratch, name));
  }
  const db = new Database(path.join(scratch, 'catalog.sqlite'));
  try {
    return db
      .prepare('SELECT id FROM states ORDER BY id')
      .all()
      .map((r) => r.id);
  } finally {
    db.close();
  }
}

/** Where a killed snapshot died, judged from what it left in the archive. */
function phaseOf(arch, scratch, nextId, result) {
  if (!result.killed) return 'finished';
  if (!fs.existsSync(path.join(arch, 'lock'))) return 'startup';
  if (recordedIds(arch, scratch).includes(nextId)) return 'recorded';
  if (updateFiles(arch).includes(updateFile(nextId))) return 'commit';
  if (incompleteFiles(arch).length > 0) return 'write';
  return 'scan';
}

/** Names, sizes, mtimes of every archive file plus the catalog's bytes: any change shows. */
function fingerprint(arch) {
  const lines = [];
  for (const e of fs.readdirSync(arch, { withFileTypes: true, recursive: true })) {
    const p = path.join(e.parentPath ?? e.path, e.name);
    const s = fs.statSync(p);
    lines.push(`${path.relative(arch, p)} ${e.isDirectory() ? 'dir' : `${s.size} ${s.mtimeMs}`}`);
  }
  lines.sort();
  lines.push(`catalog ${sha256(path.join(arch, 'catalog.sqlite'))}`);
  return lines.join('\n');
}

/** Writes random bytes (and now and then zeros) at random places; at least one region is random. */
function mutate(image) {
  const fd = fs.openSync(image, 'r+');
  try {
    const regions = between(1, 6);
    for (let r = 0; r < regions; r++) {
      const length = random() < 0.2 ? between(1, 64) : between(1, 2 * MIB);
      const offset = between(0, IMAGE_BYTES - length);
      const data = r > 0 && random() < 0.25 ? Buffer.alloc(length) : randomBytes(length);
      fs.writeSync(fd, data, 0, length, offset);
    }
  } finally {
    fs.closeSync(fd);
  }
}

function makeImage(image) {
  // Random data with zero regions between: [0,8) random, [8,12) zero, [12,28) random,
  // [28,36) zero, [36,48) random (MiB).
  const fd = fs.openSync(image, 'w');
  try {
    for (const [from, to] of [
      [0, 8],
      [12, 28],
      [36, 48],
    ]) {
      fs.writeSync(fd, randomBytes((to - from) * MIB), 0, (to - from) * MIB, from * MIB);
    }
    fs.ftruncateSync(fd, IMAGE_BYTES);
  } finally {
    fs.closeSync(fd);
  }
}

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tidemark-torture-'));
const image = path.join(root, 'disk.img');
const arch = path.join(root, 'archive');
const copies = path.join(root, 'copies');
const restores = path.join(root, 'restores');
const scratch = path.join(root, 'catalog-copy');
fs.mkdirSync(copies);
fs.mkdirSync(restores);

/** sha256 of the image copy kept for every state id. */
const expected = new Map();
/** Ids of states that a snapshot reported (printed) or that `states` listed. */
const reported = new Set();
const phases = { startup: 0, scan: 0, write: 0, commit: 0, recorded: 0, finished: 0 };
const restorePhases = { killed: 0, finished: 0 };
let restoresChecked = 0;

function keepCopy(id) {
  const copy = path.join(copies, `state-${id}.img`);
  fs.copyFileSync(image, copy);
  expected.set(id, sha256(copy));
}

function restoreAndCompare(id, why) {
  const target = path.join(restores, `s${id}-${restoresChecked++}.img`);
  const r = cliJson('restore', arch, '--state', String(id), '--to', target);
  check(r.verified === true && r.state === id, `restore of state ${id} (${why}) did not verify`, r);
  const got = sha256(target);
  fs.rmSync(target);
  check(
    got === expected.get(id),
    `state ${id} (${why}) restored different bytes than its image copy`,
    {
      restored: got,
      copy: expected.get(id),
    },
  );
}

function verifyOk(when) {
  const r = cli('verify', arch, '--json');
  check(r.code === 0, `verify failed ${when} (exit ${r.code})`, r.stdout + r.stderr);
}

/** The states as `states --json` lists them; they must be exactly 0..n with their image copies. */
function listedStates(when) {
  const states = cliJson('states', arch);
  const ids = states.map((s) => s.id);
  check(
    ids.every((id, i) => id === i),
    `states are not 0..n ${when}`,
    ids,
  );
  for (const id of reported) check(ids.includes(id), `reported state ${id} is gone ${when}`, ids);
  return states;
}

/** Where to kill a snapshot, given how the last unkilled one went. */
function chooseKill(t) {
  const dice = random();
  if (dice < 0.35) return { ms: between(5, Math.ceil(t.endAt * 1.15)), after: 'start' };
  const work = t.commitAt - t.lockAt;
  if (dice < 0.55) return { ms: between(0, Math.ceil(work)), after: 'lock' };
  // Near the end of the work: the update is finished, fsynced and renamed in these milliseconds.
  if (dice < 0.75)
    return { ms: between(Math.floor(work * 0.8), Math.ceil(work * 1.05)), after: 'lock' };
  // Right after the rename: before, during or after the catalog records the state.
  return { ms: between(0, 10), after: 'commit' };
}

/**
 * Kills a restore at a random moment: to a new file on odd runs, a rollback of an existing copy of
 * the image on even ones. The archive must be untouched; the same command again must succeed.
 */
async function killRestore(run, stateCount, restoreMs) {
  const id = between(0, stateCount - 1);
  const target = path.join(restores, `killed-${run}.img`);
  const rollback = run % 2 === 0;
  if (rollback) fs.copyFileSync(image, target);
  const args = [
    'restore',
    arch,
    '--state',
    String(id),
    '--to',
    target,
    ...(rollback ? ['--rollback'] : []),
  ];
  const before = fingerprint(arch);
  const delay = between(5, Math.ceil(restoreMs * 1.1));
  const r = await runAndKill([...args, '--json'], { ms: delay, after: 'start' }, -1);
  restorePhases[r.killed ? 'killed' : 'finished']++;
  const what = `${rollback ? 'rollback' : 'restore'} of state ${id} killed at ${delay} ms`;
  if (!r.killed) check(r.code === 0, `unkilled ${what} failed`, r.stderr);
  check(fingerprint(arch) === before, `a ${what} changed the archive`, {
    before,
    after: fingerprint(arch),
  });
  verifyOk(`after a ${what}`);
  if (r.killed) {
    // A new file appears only once proven: if it is there, the restore had finished, and the
    // command the refusal to overwrite it suggests (--rollback) finds nothing to write. An
    // existing target is fixed by running the same command again.
    const finished = !rollback && fs.existsSync(target);
    if (finished) {
      check(sha256(target) === expected.get(id), `a ${what} left a partial file at its target`);
      check(cli(...args).code !== 0, `a rerun of a finished ${what} overwrote its target`);
    }
    const again = cliJson(...args, ...(finished ? ['--rollback'] : []));
    check(again.verified === true, `rerun of a ${what} did not verify`, again);
    if (finished)
      check(again.blocksWritten === 0, `a rollback onto a finished ${what} wrote blocks`, again);
  }
  check(
    sha256(target) === expected.get(id),
    `${what} (killed: ${r.killed}): wrong bytes after the rerun`,
  );
  const leftovers = fs.readdirSync(restores).filter((n) => n !== path.basename(target));
  check(leftovers.length === 0, `a ${what} and its rerun left files next to the target`, leftovers);
  fs.rmSync(target);
}

async function main() {
  makeImage(image);
  const base = cliJson('init', image, arch, '--block-size', String(BLOCK_SIZE));
  keepCopy(base.id);
  reported.add(base.id);

  // One unkilled snapshot and restore, to learn how long they take here. The timeline is
  // updated by every unkilled snapshot that records a state, so the kills follow the load.
  mutate(image);
  keepCopy(1);
  const first = await runAndKill(['snapshot', arch, '--json'], { ms: Infinity, after: 'start' }, 1);
  check(
    first.code === 0 && JSON.parse(first.stdout).state?.id === 1,
    'the first snapshot did not record state 1',
    first,
  );
  let timeline = first.times;
  reported.add(1);
  const t = performance.now();
  restoreAndCompare(1, 'first snapshot');
  const restoreMs = performance.now() - t;

  for (let run = 1; run <= RUNS; run++) {
    const nextId = expected.size;
    mutate(image);
    keepCopy(nextId);
    const imageNow = expected.get(nextId);
    const kill = chooseKill(timeline);
    const result = await runAndKill(['snapshot', arch, '--json'], kill, nextId);
    const phase = phaseOf(arch, scratch, nextId, result);
    phases[phase]++;
    if (VERBOSE) {
      const t = timeline;
      process.stderr.write(
        `run ${run}: kill ${kill.ms} ms after ${kill.after}: ${phase} (last unkilled: lock ${t.lockAt.toFixed(0)}, ` +
          `commit ${t.commitAt.toFixed(0)}, end ${t.endAt.toFixed(0)} ms; this one ended at ${result.times.endAt.toFixed(0)})\n`,
      );
    }
    const context = `run ${run} (seed ${SEED}, kill ${kill.ms} ms after ${kill.after}, died in ${phase})`;
    try {
      if (!result.killed) check(result.code === 0, 'an unkilled snapshot failed', result.stderr);
      // A snapshot that printed its JSON before dying reported its state.
      const line = result.stdout.trim();
      if (line) {
        const printed = JSON.parse(line);
        check(
          printed.changed && printed.state.id === nextId,
          'the snapshot printed an unexpected result',
          printed,
        );
        reported.add(nextId);
      }

      // A reader sees a whole archive before any writer has cleaned up.
      verifyOk('right after the kill');
      const listed = listedStates('after the kill');
      for (const s of listed) reported.add(s.id);
      // States put at risk by this kill: the new one and the latest before it; plus one at random.
      const atRisk = new Set([nextId - 1, between(0, nextId - 1)]);
      if (listed.some((s) => s.id === nextId)) atRisk.add(nextId);
      for (const id of atRisk) restoreAndCompare(id, 'after the kill');

      // The next writer finishes or removes what the killed one left, and is not locked out.
      const plain = await runAndKill(
        ['snapshot', arch, '--json'],
        { ms: Infinity, after: 'start' },
        nextId,
      );
      check(plain.code === 0, 'the snapshot after the kill failed', plain.stderr);
      const out = JSON.parse(plain.stdout);
      if (out.changed) timeline = plain.times;
      const committedBefore = listed.some((s) => s.id === nextId);
      if (committedBefore)
        check(!out.changed, 'the killed snapshot committed, yet the next one recorded again', out);
      else
        check(
          out.changed && out.state.id === nextId,
          'the snapshot after the kill did not record the change',
          out,
        );
      reported.add(nextId);
      const leftovers = incompleteFiles(arch);
      check(
        leftovers.length === 0,
        'incomplete files remain after a writer opened the archive',
        leftovers,
      );
      check(!fs.existsSync(path.join(arch, 'lock')), 'the lock remains after the snapshot ended');
      check(expected.get(nextId) === imageNow, 'internal: copy mismatch');
      restoreAndCompare(nextId, 'plain snapshot after the kill');
      verifyOk('after the plain snapshot');

      await killRestore(run, nextId + 1, restoreMs);
    } catch (err) {
      if (err instanceof Failure) err.message = `${context}: ${err.message}`;
      throw err;
    }
    if (run % 10 === 0) process.stderr.write(`  ${run}/${RUNS} runs\n`);
  }

  // Finally every state, deep verify included.
  const deep = cli('verify', arch, '--deep', '--json');
  check(deep.code === 0, 'deep verify failed at the end', deep.stdout + deep.stderr);
  for (const s of listedStates('at the end')) restoreAndCompare(s.id, 'final sweep');
  check(expected.size === RUNS + 2, `expected ${RUNS + 2} states, have ${expected.size}`);

  const killed = RUNS - phases.finished;
  console.log(
    `${RUNS} runs (seed ${SEED}), ${killed} snapshots killed: ${phases.startup} before the lock, ` +
      `${phases.scan} during scan, ${phases.write} while writing the update, ${phases.commit} between commit and catalog, ` +
      `${phases.recorded} after recording; ${phases.finished} finished first; ${restorePhases.killed} restores killed, ` +
      `${restorePhases.finished} finished; all ${expected.size} states verified and restored`,
  );
}

main().then(
  () => {
    if (!process.env.TORTURE_KEEP) fs.rmSync(root, { recursive: true, force: true });
  },
  (err) => {
    console.error(`FAILED ${err.message}`);
    if (err.details !== undefined) {
      console.error(
        typeof err.details === 'string' ? err.details : JSON.stringify(err.details, null, 2),
      );
    }
    if (!(err instanceof Failure)) console.error(err.stack);
    console.error(`archive, image and copies kept in ${root}`);
    process.exit(1);
  },
);
