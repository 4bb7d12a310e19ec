import * as fs from 'node:fs';
import * as path from 'node:path';
import { TidemarkError } from '../../../shared/errors.js';
import type { Consistency } from '../../../shared/states.js';
import type { Archive } from '../archive.js';
import type { StateRow } from '../catalog.js';
import type { Clock } from '../clock.js';
import type { SpaceGuardReport } from '../../../shared/retention.js';
import { RECORD_ENTRY_FRAME, type UpdateMeta } from '../format/update-format.js';
import { FORMAT_VERSION } from '../format/version.js';
import { updateName } from '../update-names.js';
import { BlockSink } from './block-sink.js';
import { snapshotTree, type TreeSnapshot } from './btrfs-snapshot.js';
import { Excludes } from './excludes.js';
import { FileBlockReader } from './file-blocks.js';
import { runHook } from './hooks.js';
import { countTreeBytes, ScanProgress, type ProgressSink } from './scan-progress.js';
import { emptySuspects, sameEntry, TreeScanner, type Suspects } from './tree-scanner.js';
import { displayPath, encodeChange, encodedLength, type EntryChange } from './volume-entry.js';
import { HASH_BYTES } from '../block-hash.js';
import type { VolumeTree } from './volume-tree.js';

/**
 * How long a point keeps re-reading what changed while it read, waiting for a quiet round,
 * before it is recorded as `none`: long enough to outlast a burst of writes (an application
 * saving, a database committing), short enough that the interval still ends near its time. At
 * least MIN_ROUNDS are made however long a round takes, at most MAX_ROUNDS however short.
 */
export const QUIET_LIMIT_MS = 3000;
const MIN_ROUNDS = 3;
const MAX_ROUNDS = 100;
/**
 * Without a watcher, a round that finds nothing moved proves the tree quiet only between the two
 * looks at each file. A rescan of a small tree takes a millisecond or two, less than a busy
 * machine may keep a writer off its cores: the second look waits this long, so that a quiet
 * round means a quiet tree, not a writer that was not running.
 */
const RESCAN_GAP_MS = 100;
const FRAME_BYTES = 1 << 20;

/** Paths (and folders to list) the watcher named. */
export interface Arrivals {
  paths: Set<string>;
  folders: Set<string>;
}

/**
 * Where changes come from between rounds when a watcher runs. A round claims the tree as it was
 * when the round began: every change made before that has arrived once `roundEnd` resolves, and
 * what the round read is shown unchanged since then by its own stats (TreeScanner.stableSince).
 */
export interface LiveChanges {
  /** Begins a round: returns what arrived since the last call (to read too) and counts anew. */
  roundStart(): Suspects;
  /** Waits until changes made before the round began have arrived; what arrived since then. */
  roundEnd(): Promise<Arrivals>;
}

export interface VolumeCaptureOptions {
  clock: Clock;
  /** The last state's tree, updated in place (the caller drops it if the point fails). */
  tree: VolumeTree;
  /** What changed since the last point; a full rescan when absent. */
  suspects?: Suspects;
  /** The watcher, when one runs; otherwise rounds after the first are stat-only rescans. */
  live?: LiveChanges;
  /** Read from a btrfs snapshot where the tree lies on btrfs (default true). */
  useSnapshots?: boolean;
  /** Bytes of files looked at in the first round, of the last state's (or a pre-count's) total. */
  onProgress?: ProgressSink;
}

export type VolumeCaptureResult = (
  | { changed: true; state: StateRow; notes: string[]; postHookError?: string }
  | { changed: false; latest: StateRow | null; notes: string[]; postHookError?: string }
) & {
  /** What the space guard removed around this point (retention/space-guard.ts). */ spaceGuard?: SpaceGuardReport;
};

/**
 * One point of a volume: runs the pre-hook, reads the changed part of the tree (from a read-only
 * btrfs snapshot where it can), re-reads what changed meanwhile until a round finds nothing new
 * (bounded), and commits the consolidated update, then runs the post-hook. The update holds the
 * new content blocks and, per changed path, its entry as of the point (or its removal).
 */
export async function captureVolumePoint(
  archive: Archive,
  latest: StateRow | null,
  options: VolumeCaptureOptions,
): Promise<VolumeCaptureResult> {
  const { manifest } = archive;
  const settings = manifest.volume;
  if (!settings) throw new TidemarkError('internal', 'not a volume archive');
  const root = manifest.primary.path;
  checkRoot(root, settings.mountPoint === true);
  const hookEnv = { tree: root, archive: archive.dir };
  if (settings.preHook) {
    const pre = runHook(settings.preHook, 'pre', hookEnv);
    if (!pre.ok)
      throw new TidemarkError('volume.pre-hook-failed', `point skipped: ${pre.reason}`, {
        retryable: true,
      });
  }
  let result: VolumeCaptureResult;
  let postHookError: string | undefined;
  try {
    result = await capture(archive, latest, options);
  } finally {
    // The post-hook runs after every point that ran its pre-hook, committed or not.
    if (settings.postHook) {
      const post = runHook(settings.postHook, 'post', hookEnv);
      if (!post.ok) postHookError = post.reason;
    }
  }
  if (postHookError) result.postHookError = postHookError;
  return result;
}

/** Whether `dir` is the root of a mounted filesystem (its device differs from its parent's). */
export function isMountPoint(dir: string): boolean {
  const parent = path.dirname(dir);
  return parent !== dir && fs.statSync(dir).dev !== fs.statSync(parent).dev;
}

function checkRoot(root: string, wasMountPoint: boolean): void {
  let st: fs.Stats;
  try {
    st = fs.statSync(root);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new TidemarkError(
      code === 'ENOENT' ? 'primary.vanished' : 'primary.unreadable',
      code === 'ENOENT'
        ? `the protected folder ${root} is gone (unmounted or removed)`
        : `cannot read ${root}: ${(err as Error).message}`,
    );
  }
  if (!st.isDirectory())
    throw new TidemarkError('primary.vanished', `${root} is no longer a folder`);
  if (wasMountPoint && !isMountPoint(root)) {
    // An unmounted drive leaves its empty mount point: read as is, every file would be "removed".
    throw new TidemarkError(
      'primary.vanished',
      `${root} was a mounted drive and nothing is mounted there now: mount it, then try again`,
      { retryable: true },
    );
  }
}

async function capture(
  archive: Archive,
  latest: StateRow | null,
  options: VolumeCaptureOptions,
): Promise<VolumeCaptureResult> {
  const { manifest } = archive;
  const root = manifest.primary.path;
  const stateId = latest ? latest.id + 1 : 0;
  const time = options.clock.now();
  const notes: string[] = [];
  let snapshot: TreeSnapshot | undefined;
  if (options.useSnapshots !== false) {
    try {
      snapshot = snapshotTree(root, manifest.archiveId.slice(0, 8));
    } catch (err) {
      notes.push(`btrfs snapshot failed, reading the live tree: ${errorLine(err)}`);
    }
  }
  const sink = new BlockSink(
    archive.store,
    archive.catalog,
    updateName(stateId),
    manifest.blockSize,
  );
  try {
    const readRoot = Buffer.from(snapshot ? snapshot.readRoot : root);
    const excludes = new Excludes(manifest.volume?.excludes ?? []);
    const reader = new FileBlockReader(manifest.blockSize, sink);
    const scanner = new TreeScanner(
      readRoot,
      options.tree,
      excludes,
      reader,
      () => BigInt(options.clock.now().getTime()) * 1_000_000n,
    );
    if (options.onProgress) {
      // A baseline has no last state to take the total from: count first (metadata only).
      const total =
        options.tree.size > 0 ? options.tree.totalBytes() : countTreeBytes(readRoot, excludes);
      const progress = new ScanProgress(total, options.onProgress);
      scanner.progress = progress;
      reader.onBytes = (n) => scanner.progress?.add(n);
    }
    // A snapshot is frozen: one pass over it is the point, whatever the watcher saw meanwhile.
    const grade = snapshot
      ? await scanOnce(scanner, options.suspects ?? { ...emptySuspects(), all: true })
      : await scanUntilQuiet(scanner, options, async () => {
          // While late watcher events settle: the blocks read so far are stored and made durable
          // and the state hash brought up to date, so a quiet round leaves the commit little to do.
          const { synced } = await sink.writeAhead();
          options.tree.stateHash();
          await synced;
        });
    await sink.flush();
    for (const [p, reason] of scanner.notes) notes.push(`${displayPath(p)}: ${reason}`);
    return await commit(archive, latest, stateId, time, options.tree, scanner, sink, grade, notes);
  } catch (err) {
    await sink.abort();
    throw err;
  } finally {
    sink.release();
    try {
      snapshot?.release();
    } catch (err) {
      // The result (if any) carries this array: the note reaches the user with the point.
      notes.push(`could not delete the btrfs snapshot ${snapshot?.snapshotDir}: ${errorLine(err)}`);
    }
  }
}

interface Grade {
  consistency: Consistency;
  reason?: string;
}

async function scanOnce(scanner: TreeScanner, suspects: Suspects): Promise<Grade> {
  await scanner.scan(suspects);
  firstRoundDone(scanner);
  return { consistency: 'snapshot' };
}

/**
 * `whileSettling` runs alongside each live round's wait for late events: work the commit would
 * do anyway, which a round that is not quiet only does again in part.
 */
async function scanUntilQuiet(
  scanner: TreeScanner,
  options: VolumeCaptureOptions,
  whileSettling: () => Promise<void>,
): Promise<Grade> {
  let suspects = options.suspects ?? { ...emptySuspects(), all: true };
  let lastChanged: string[] = [];
  const started = options.clock.now().getTime();
  let round = 0;
  for (; round < MAX_ROUNDS; round++) {
    if (round >= MIN_ROUNDS && options.clock.now().getTime() - started > QUIET_LIMIT_MS) break;
    if (options.live) {
      suspects = merged(suspects, options.live.roundStart());
      scanner.stableSince = BigInt(options.clock.now().getTime()) * 1_000_000n;
    } else if (round > 0) await new Promise((r) => setTimeout(r, RESCAN_GAP_MS));
    const report = await scanner.scan(suspects);
    firstRoundDone(scanner);
    const unsettled = [...report.unsettled];
    if (options.live) {
      const [arrived] = await Promise.all([options.live.roundEnd(), whileSettling()]);
      // An event for a path this round showed unchanged since it began reports an older write.
      const open = [...arrived.paths].filter((p) => !scanner.proven.has(p));
      if (open.length === 0 && arrived.folders.size === 0 && unsettled.length === 0)
        return { consistency: 'quiescent' };
      // What arrived is taken by the next round's start, with whatever comes meanwhile.
      suspects = { ...emptySuspects(), named: true, paths: new Set(unsettled) };
      lastChanged = [...open, ...unsettled];
    } else {
      // No watcher: a rescan of metadata tells whether anything moved while the round read.
      if (round > 0 && report.changed === 0 && unsettled.length === 0)
        return { consistency: 'quiescent' };
      suspects = { ...emptySuspects(), all: true };
      for (const p of unsettled) suspects.paths.add(p);
      lastChanged = [...unsettled, ...report.examples];
    }
  }
  const example = lastChanged[0] === undefined ? '' : ` (e.g. ${displayPath(lastChanged[0])})`;
  return {
    consistency: 'none',
    reason: `the tree kept changing while it was read (${round} rounds, ${(options.clock.now().getTime() - started) / 1000} s)${example}`,
  };
}

function merged(a: Suspects, b: Suspects): Suspects {
  if (a.all) return a;
  if (b.all) return b;
  return {
    all: false,
    named: a.named === true && b.named === true,
    dirs: new Set([...a.dirs, ...b.dirs]),
    paths: new Set([...a.paths, ...b.paths]),
  };
}

function firstRoundDone(scanner: TreeScanner): void {
  scanner.progress?.finish();
  scanner.progress = null;
}

async function commit(
  archive: Archive,
  latest: StateRow | null,
  stateId: number,
  time: Date,
  tree: VolumeTree,
  scanner: TreeScanner,
  sink: BlockSink,
  grade: Grade,
  notes: string[],
): Promise<VolumeCaptureResult> {
  const changes: EntryChange[] = [];
  let changedFiles = 0;
  let changedBlocks = 0;
  const paths = [...scanner.before.keys()].sort();
  for (const p of paths) {
    const before = scanner.before.get(p);
    const after = tree.get(p);
    if (!after) {
      if (before) {
        changes.push({ op: 'delete', path: p });
        changedFiles++;
      }
      continue;
    }
    changes.push({ op: 'upsert', entry: after });
    if (!before || !sameEntry(before, after)) {
      changedFiles++;
      changedBlocks += blocksDiffering(before?.blocks, after.blocks);
    }
  }
  const unreadable = [...scanner.unreadable].map(([p, reason]) => ({
    path: displayPath(p),
    reason,
  }));
  if (latest && changedFiles === 0) {
    await sink.abort();
    return { changed: false, latest, notes };
  }
  const writer = await sink.ensureWriter();
  // Deletions first, so a folder replaced by a file of the same name, or the reverse, applies cleanly.
  const ordered = [
    ...changes.filter((c) => c.op === 'delete'),
    ...changes.filter((c) => c.op === 'upsert'),
  ];
  let frame = Buffer.allocUnsafe(FRAME_BYTES);
  let used = 0;
  for (const c of ordered) {
    const n = encodedLength(c);
    if (used + n > frame.length && used > 0) {
      await writer.addFrame(RECORD_ENTRY_FRAME, frame.subarray(0, used));
      used = 0;
    }
    if (n > frame.length) frame = Buffer.allocUnsafe(n);
    used = encodeChange(frame, used, c);
  }
  if (used > 0) await writer.addFrame(RECORD_ENTRY_FRAME, frame.subarray(0, used));
  const { manifest } = archive;
  const stateHash = tree.stateHash();
  const meta: UpdateMeta = {
    format: FORMAT_VERSION,
    archiveId: manifest.archiveId,
    stateId,
    parentStateId: latest ? latest.id : null,
    time: time.toISOString(),
    blockSize: manifest.blockSize,
    primarySize: tree.totalBytes(),
    changedBlocks,
    storedBlocks: writer.storedBlocks,
    stateHash,
    consistency: grade.consistency,
    ...(grade.reason ? { consistencyReason: grade.reason } : {}),
    changedFiles,
    ...(unreadable.length > 0 ? { unreadable } : {}),
  };
  let size: number;
  try {
    size = await writer.finish(meta);
  } catch (err) {
    await writer.abort();
    throw err;
  }
  const state: StateRow = {
    id: stateId,
    parent: meta.parentStateId,
    time: meta.time,
    timeMs: time.getTime(),
    update: updateName(stateId),
    changedBlocks,
    storedBytes: size,
    stateHash,
    consistency: grade.consistency,
    ...(grade.reason ? { consistencyReason: grade.reason } : {}),
    changedFiles,
    ...(unreadable.length > 0 ? { unreadable } : {}),
  };
  try {
    archive.catalog.recordState(state, sink.blobs);
  } catch (err) {
    // As for devices: a state the caller is told failed must not appear later.
    await archive.store.delete(state.update).catch(() => undefined);
    throw err;
  }
  return { changed: true, state, notes };
}

/** Hashes compared in one go before a run that differs is looked at hash by hash. */
const RUN_BYTES = 32 * HASH_BYTES;

/** Blocks of the new version that differ from the old one at the same position. */
function blocksDiffering(before: Buffer | undefined, after: Buffer | undefined): number {
  if (!after) return 0;
  let n = 0;
  for (let run = 0; run < after.length; run += RUN_BYTES) {
    const end = Math.min(after.length, run + RUN_BYTES);
    // A big file changed in one place: most runs of its block list are equal as a whole.
    if (before && end <= before.length && before.compare(after, run, end, run, end) === 0) continue;
    n += differingIn(before, after, run, end);
  }
  return n;
}

function differingIn(before: Buffer | undefined, after: Buffer, from: number, to: number): number {
  let n = 0;
  for (let at = from; at < to; at += HASH_BYTES) {
    if (
      !before ||
      at + HASH_BYTES > before.length ||
      before.compare(after, at, at + HASH_BYTES, at, at + HASH_BYTES) !== 0
    )
      n++;
  }
  return n;
}

function errorLine(err: unknown): string {
  const e = err as { stderr?: Buffer | string; message?: string };
  const said = e.stderr ? e.stderr.toString().trim().split('\n').pop() : undefined;
  return said || e.message || String(err);
}
