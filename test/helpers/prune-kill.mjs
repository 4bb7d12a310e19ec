// Shared by test/node/retention-crash.test.ts (a few kills in CI) and
// test/torture/kill-prune.mjs (50+): plain JS so the torture script runs without a build of the
// tests; types in prune-kill.d.mts.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { runAndKill } from './kill-at.mjs';

const MIB = 1 << 20;

/** Retention flags that keep nothing by age: only the newest and the pinned states stay. */
export const KEEP_NEWEST_ONLY = [
  '--keep-within',
  '1s',
  '--keep-hourly',
  '0',
  '--keep-daily',
  '0',
  '--keep-weekly',
  '0',
];

/** Policy that drops every state but the newest and the pinned ones, whatever their age. */
export const DROP_ALL_BUT_PINNED = ['--now', '2040-01-01T00:00:00Z', ...KEEP_NEWEST_ONLY];

function sha256(file) {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

function run(cli, ...args) {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
  if (r.status !== 0)
    throw new Error(`tidemark ${args.join(' ')} exited ${r.status}: ${r.stderr || r.stdout}`);
  return r.stdout;
}

const json = (cli, ...args) => JSON.parse(run(cli, ...args, '--json'));

/** sha256 over a folder tree: each entry's path, type, mode and content, in name order. */
export function treeDigest(root) {
  const h = createHash('sha256');
  const walk = (rel) => {
    for (const name of fs.readdirSync(path.join(root, rel)).sort()) {
      const r = path.join(rel, name);
      const abs = path.join(root, r);
      const st = fs.lstatSync(abs);
      h.update(`${r}\0${st.mode}\0`);
      if (st.isDirectory()) walk(r);
      else if (st.isSymbolicLink()) h.update(fs.readlinkSync(abs));
      else h.update(fs.readFileSync(abs));
      h.update('\0');
    }
  };
  walk('');
  return h.digest('hex');
}

/**
 * A folder archive of `states` + 1 states of a tree of about `mib` MiB: each interval rewrites
 * parts of some files, adds one, deletes one and writes a block seen before again; `pins`
 * pinned. Returns the digest of the tree at every state.
 */
function buildVolumeArchive(cli, dir, { states, mib, pins }) {
  const tree = path.join(dir, 'tree');
  const archive = path.join(dir, 'pristine');
  const again = randomBytes(300_000);
  fs.mkdirSync(path.join(tree, 'docs', 'old'), { recursive: true });
  const files = 8;
  const fileBytes = Math.floor((mib * MIB) / files);
  for (let i = 0; i < files; i++)
    fs.writeFileSync(path.join(tree, i % 2 ? 'docs' : '', `f${i}.bin`), randomBytes(fileBytes));
  fs.writeFileSync(path.join(tree, 'docs', 'old', 'notes.txt'), 'first\n');
  run(cli, 'init', tree, archive);
  const shas = [treeDigest(tree)];
  for (let k = 1; k <= states; k++) {
    for (let r = 0; r < 3; r++) {
      const i = Math.floor(Math.random() * files);
      const file = path.join(tree, i % 2 ? 'docs' : '', `f${i}.bin`);
      const fd = fs.openSync(file, 'r+');
      const length = 1 + Math.floor(Math.random() * (fileBytes / 4));
      fs.writeSync(fd, randomBytes(length), 0, length, Math.floor(Math.random() * fileBytes));
      fs.closeSync(fd);
    }
    fs.writeFileSync(path.join(tree, 'docs', `added-${k}.txt`), randomBytes(1000 + k * 5000));
    if (k > 2) fs.rmSync(path.join(tree, 'docs', `added-${k - 2}.txt`));
    if (k % 4 === 1) fs.writeFileSync(path.join(tree, 'docs', 'old', 'again.bin'), again);
    if (k % 4 === 3) fs.rmSync(path.join(tree, 'docs', 'old', 'again.bin'), { force: true });
    run(cli, 'snapshot', archive);
    shas.push(treeDigest(tree));
  }
  for (const p of pins) run(cli, 'pin', archive, String(p));
  return { kind: 'volume', archive, shas, kept: [...pins, states].sort((a, b) => a - b) };
}

/**
 * A device archive of `states` + 1 states of an image of `mib` MiB, with random regions changed
 * each interval (some content written again later, some zeroed), and `pins` pinned. Returns the
 * sha256 of the image at every state.
 */
export function buildPruneArchive(
  cli,
  dir,
  { states = 12, mib = 16, pins = [3, 7], kind = 'device' } = {},
) {
  if (kind === 'volume') return buildVolumeArchive(cli, dir, { states, mib, pins });
  const image = path.join(dir, 'disk.img');
  const archive = path.join(dir, 'pristine');
  const size = mib * MIB;
  fs.writeFileSync(image, Buffer.alloc(size));
  const fd = fs.openSync(image, 'r+');
  const again = randomBytes(300_000);
  try {
    fs.writeSync(fd, randomBytes(size / 2), 0, size / 2, 0);
    run(cli, 'init', image, archive);
    const shas = [sha256(image)];
    for (let k = 1; k <= states; k++) {
      for (let r = 0; r < 4; r++) {
        const length = 1 + Math.floor(Math.random() * MIB);
        const offset = Math.floor(Math.random() * (size - length));
        const data = r === 3 ? Buffer.alloc(length) : randomBytes(length);
        fs.writeSync(fd, data, 0, length, offset);
      }
      if (k % 4 === 1) fs.writeSync(fd, again, 0, again.length, (k * MIB) % (size - MIB));
      run(cli, 'snapshot', archive);
      shas.push(sha256(image));
    }
    for (const p of pins) run(cli, 'pin', archive, String(p));
    return { kind: 'device', archive, shas, kept: [...pins, states].sort((a, b) => a - b) };
  } finally {
    fs.closeSync(fd);
  }
}

function restoresIdentical(cli, build, archive, id, scratch) {
  const out = path.join(scratch, `restore-${id}`);
  fs.rmSync(out, { recursive: true, force: true });
  run(cli, 'restore', archive, '--state', String(id), '--to', out);
  const ok = (build.kind === 'volume' ? treeDigest(out) : sha256(out)) === build.shas[id];
  fs.rmSync(out, { recursive: true, force: true });
  if (!ok) throw new Error(`state ${id} restored different from the image at its point`);
}

/** Update files whose range of states lies inside another's: a collapse not yet finished. */
function supersededLeft(archive) {
  const names = fs.readdirSync(path.join(archive, 'updates'));
  const ranges = names.map((n) => {
    const m = /^(\d{10})(?:-(\d{10}))?\.tmu$/.exec(n);
    return m ? { n, to: Number(m[1]), from: Number(m[2] ?? m[1]) } : { n, to: -1, from: -1 };
  });
  return ranges.filter((a) =>
    ranges.some(
      (b) => b !== a && b.from <= a.from && a.to <= b.to && b.to - b.from > a.to - a.from,
    ),
  );
}

/**
 * One kill: copies the pristine archive, starts `tidemark prune` on it and SIGKILLs it `killMs`
 * after it took the archive lock. Then, before any writer ran: every state the prune keeps is
 * listed and restores byte-identical, and so does one the prune meant to drop if still listed.
 * Then the prune is run again to its end: exactly the kept states remain and nothing superseded or
 * incomplete is left; `thorough` also restores them again and runs a deep verify. Throws on any
 * failure; returns what it saw.
 */
export async function killPruneOnce(cli, build, work, killMs, { thorough = true } = {}) {
  fs.rmSync(work, { recursive: true, force: true });
  execFileSync('cp', ['-a', build.archive, work]);
  const scratch = `${work}-scratch`;
  fs.mkdirSync(scratch, { recursive: true });
  const result = await runAndKill(
    cli,
    ['prune', work, ...DROP_ALL_BUT_PINNED, '--json'],
    { after: 'lock', ms: killMs },
    work,
    1e9,
  );
  const listed = json(cli, 'states', work).map((s) => s.id);
  for (const id of build.kept)
    if (!listed.includes(id)) throw new Error(`kept state ${id} is gone after the kill`);
  // The kept states, and one state the prune meant to drop if a reader still lists it.
  const doomed = listed.filter((id) => !build.kept.includes(id));
  const extra = doomed[Math.floor(Math.random() * doomed.length)];
  for (const id of [...build.kept, ...(extra === undefined ? [] : [extra])])
    restoresIdentical(cli, build, work, id, scratch);
  const redo = json(cli, 'prune', work, ...DROP_ALL_BUT_PINNED);
  const after = redo.states.filter((s) => s.keep).map((s) => s.id);
  if (JSON.stringify(after) !== JSON.stringify(build.kept))
    throw new Error(`after the redo the states are ${after}, not ${build.kept}`);
  if (thorough) {
    if (JSON.stringify(json(cli, 'states', work).map((s) => s.id)) !== JSON.stringify(after))
      throw new Error('states after the redo do not match what it kept');
    for (const id of after) restoresIdentical(cli, build, work, id, scratch);
    const verify = json(cli, 'verify', work, '--deep');
    if (!verify.ok) throw new Error(`verify after the redo: ${JSON.stringify(verify.problems)}`);
  }
  const left = supersededLeft(work).map((r) => r.n);
  const incomplete = fs
    .readdirSync(work, { recursive: true })
    .filter((n) => String(n).includes('.incomplete-'));
  if (left.length > 0 || incomplete.length > 0)
    throw new Error(`left behind: ${[...left, ...incomplete].join(', ')}`);
  fs.rmSync(scratch, { recursive: true, force: true });
  return {
    killed: result.killed,
    listedAfterKill: listed,
    redoDropped: redo.dropped,
    times: result.times,
  };
}
