/**
 * The CLI of volume mode (a folder as the primary): `init` on a folder, `watch`, `history`,
 * `diff`, and `snapshot`, `states`, `restore`, `verify` when the archive protects a folder.
 * `runVolumeCommand` returns undefined for anything that is not its business, so the device
 * commands handle it as before.
 */
import * as fs from 'node:fs';
import { TidemarkError } from '../../shared/errors.js';
import type { PruneReport } from '../../shared/retention.js';
import type { StateInfo } from '../../shared/states.js';
import { isVolumeArchive } from '../engine/archive-kind.js';
import type { VolumeCaptureResult } from '../engine/volume-engine.js';
import { integer, printVerifyReport, restoreTarget } from './common-options.js';
import { formatBytes, shortHash } from './format-human.js';
import {
  describePruned,
  minFreeOption,
  WATCH_RETENTION_OPTIONS,
  watchRetention,
} from './retention-commands.js';
import { describeSpaceGuard } from '../../shared/retention.js';
import { parse, tryParse, type FlagValues, type Options } from './parse-args.js';

type Out = (line: string) => void;

// The volume engine is loaded by the commands that use it, not by the check whether an archive
// is a folder's (device commands pass through that check).
const engine = (): Promise<typeof import('../engine/volume-engine.js')> =>
  import('../engine/volume-engine.js');

const INIT_OPTIONS: Options = {
  exclude: { type: 'string', multiple: true },
  'no-default-excludes': { type: 'boolean' },
  'pre-hook': { type: 'string' },
  'post-hook': { type: 'string' },
  'block-size': { type: 'string' },
  'no-btrfs-snapshot': { type: 'boolean' },
  json: { type: 'boolean' },
};
const SNAPSHOT_OPTIONS: Options = {
  json: { type: 'boolean' },
  'min-free': { type: 'string' },
  'no-btrfs-snapshot': { type: 'boolean' },
};

/** Whether `dir` holds a volume archive; false when it holds none (the device path says why). */
async function volumeArchiveAt(dir: string | undefined): Promise<boolean> {
  if (dir === undefined) return false;
  try {
    return await isVolumeArchive(dir);
  } catch {
    return false;
  }
}

function isFolder(p: string | undefined): boolean {
  try {
    return p !== undefined && fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}

export async function runVolumeCommand(
  command: string | undefined,
  rest: string[],
  out: Out,
): Promise<number | undefined> {
  switch (command) {
    case 'init': {
      const guess = tryParse(rest, INIT_OPTIONS);
      if (!guess || !isFolder(guess.positionals[0])) return undefined;
      return init(rest, out);
    }
    case 'snapshot': {
      const guess = tryParse(rest, SNAPSHOT_OPTIONS);
      if (!guess || !(await volumeArchiveAt(guess.positionals[0]))) return undefined;
      return snapshot(rest, out);
    }
    case 'states':
    case 'verify': {
      const guess = tryParse(rest, { json: { type: 'boolean' }, deep: { type: 'boolean' } });
      if (!guess || !(await volumeArchiveAt(guess.positionals[0]))) return undefined;
      return command === 'states' ? states(rest, out) : verify(rest, out);
    }
    case 'restore': {
      const guess = tryParse(rest, RESTORE_OPTIONS);
      if (!guess || !(await volumeArchiveAt(guess.positionals[0]))) return undefined;
      return restore(rest, out);
    }
    case 'watch':
      return watch(rest, out);
    case 'history':
      return history(rest, out);
    case 'diff':
      return diff(rest, out);
    default:
      return undefined;
  }
}

function warn(line: string): void {
  process.stderr.write(`tidemark: ${line}\n`);
}

function describeVolumeState(s: StateInfo): string {
  const grade =
    s.consistency === 'none'
      ? ` consistency none (${s.consistencyReason ?? 'unknown'})`
      : ` ${s.consistency}`;
  return `state ${s.id}  ${s.time}  ${s.changedFiles ?? 0} files changed  ${formatBytes(s.storedBytes)} stored  hash ${shortHash(s.stateHash)}${grade}${s.pinned ? '  pinned' : ''}`;
}

/** Prints a point's outcome; the warnings (unreadable files, notes) go to stderr. */
function reportPoint(
  result: VolumeCaptureResult,
  json: boolean,
  out: Out,
  pointMs?: number,
  pruned?: PruneReport,
): void {
  const guard = result.spaceGuard ? { spaceGuard: result.spaceGuard } : {};
  if (json) {
    const took = pointMs === undefined ? {} : { pointMs: Math.round(pointMs) };
    const retention = pruned ? { pruned } : {};
    out(
      JSON.stringify(
        result.changed
          ? {
              changed: true,
              state: result.state,
              notes: result.notes,
              ...took,
              ...guard,
              ...retention,
            }
          : { changed: false, notes: result.notes, ...took, ...guard },
      ),
    );
  } else if (result.changed) {
    out(describeVolumeState(result.state));
    if (pruned) out(describePruned(pruned));
  } else out(`nothing changed since state ${result.latest?.id}: no state recorded`);
  if (result.changed)
    for (const u of result.state.unreadable ?? [])
      warn(`could not read ${u.path}: ${u.reason} (its last version, if any, is kept)`);
  for (const n of result.notes) warn(`note: ${n}`);
  if (result.postHookError) warn(result.postHookError);
  if (result.spaceGuard) warn(describeSpaceGuard(result.spaceGuard));
}

async function init(rest: string[], out: Out): Promise<number> {
  const { values, args } = parse<FlagValues>(rest, INIT_OPTIONS, 2);
  const blockSize =
    values['block-size'] === undefined ? undefined : integer(values['block-size'], '--block-size');
  const result = await (
    await engine()
  ).initVolumeArchive(args[0] as string, args[1] as string, {
    excludes: (values.exclude as string[] | undefined) ?? [],
    noDefaultExcludes: values['no-default-excludes'] === true,
    ...(typeof values['pre-hook'] === 'string' ? { preHook: values['pre-hook'] } : {}),
    ...(typeof values['post-hook'] === 'string' ? { postHook: values['post-hook'] } : {}),
    ...(blockSize ? { blockSize } : {}),
    ...(values['no-btrfs-snapshot'] ? { useSnapshots: false } : {}),
  });
  if (values.json) out(JSON.stringify(result.state));
  reportPoint(result, false, values.json ? () => undefined : out);
  return 0;
}

async function snapshot(rest: string[], out: Out): Promise<number> {
  const { values, args } = parse<FlagValues>(rest, SNAPSHOT_OPTIONS, 1);
  const minFree = minFreeOption(values['min-free']);
  const result = await (
    await engine()
  ).snapshotVolume(args[0] as string, {
    ...(values['no-btrfs-snapshot'] ? { useSnapshots: false } : {}),
    ...(minFree ? { minFree } : {}),
  });
  reportPoint(result, values.json === true, out);
  return 0;
}

async function states(rest: string[], out: Out): Promise<number> {
  const { values, args } = parse<FlagValues>(rest, { json: { type: 'boolean' } }, 1);
  const list = await (await engine()).listVolumeStates(args[0] as string);
  if (values.json) out(JSON.stringify(list));
  else for (const s of list) out(describeVolumeState(s));
  return 0;
}

async function verify(rest: string[], out: Out): Promise<number> {
  const { values, args } = parse<FlagValues>(
    rest,
    { json: { type: 'boolean' }, deep: { type: 'boolean' } },
    1,
  );
  const report = await (
    await engine()
  ).verifyVolume(args[0] as string, { deep: values.deep === true });
  return printVerifyReport(report, values.json === true, out);
}

const RESTORE_OPTIONS: Options = {
  state: { type: 'string' },
  at: { type: 'string' },
  to: { type: 'string' },
  path: { type: 'string', multiple: true },
  rollback: { type: 'boolean' },
  force: { type: 'boolean' },
  json: { type: 'boolean' },
};

async function restore(rest: string[], out: Out): Promise<number> {
  const { values, args } = parse<FlagValues>(rest, RESTORE_OPTIONS, 1);
  if (values.rollback)
    throw new TidemarkError(
      'usage',
      '--rollback is for devices; a folder restores with --to PATH (and --force to write over data)',
    );
  const { selector, to } = restoreTarget(values);
  const report = await (
    await engine()
  ).restoreVolume(args[0] as string, selector, to, {
    ...(Array.isArray(values.path) ? { paths: values.path } : {}),
    force: values.force === true,
  });
  if (values.json) out(JSON.stringify(report));
  else
    out(
      `restored ${report.paths ? `${report.paths.join(', ')} of state ${report.state}` : report.path === '' ? `state ${report.state}` : `${report.path} of state ${report.state}`} to ${report.target}: ${report.files} files, ${report.dirs} folders, ${report.symlinks} links (${formatBytes(report.bytesWritten)}), every file matches its recorded hash`,
    );
  for (const s of report.skipped) warn(`not restored: ${s.path}: ${s.reason}`);
  return 0;
}

/** "30s", "5m", "1h", "500ms", or a number of seconds. */
export function parseDuration(text: string, flag = '--every'): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;
  const ms = m ? Number(m[1]) * unit[(m[2] ?? 's') as keyof typeof unit] : NaN;
  if (!Number.isFinite(ms) || ms < 100)
    throw new TidemarkError(
      'usage',
      `${flag} needs a duration of at least 100ms, like 30s, 5m or 1h (got ${text})`,
    );
  return ms;
}

async function watch(rest: string[], out: Out): Promise<number> {
  const { values, args } = parse<FlagValues>(
    rest,
    {
      every: { type: 'string' },
      'rescan-every': { type: 'string' },
      json: { type: 'boolean' },
      'no-btrfs-snapshot': { type: 'boolean' },
      'min-free': { type: 'string' },
      ...WATCH_RETENTION_OPTIONS,
    },
    1,
  );
  const minFree = minFreeOption(values['min-free']);
  const retention = watchRetention(values);
  if (typeof values.every !== 'string')
    throw new TidemarkError('usage', 'watch needs --every DURATION (e.g. 5m)');
  const everyMs = parseDuration(values.every);
  const rescanEvery = values['rescan-every'];
  if (rescanEvery !== undefined && typeof rescanEvery !== 'string')
    throw new TidemarkError('usage', '--rescan-every needs a duration (e.g. 1h)');
  const rescanEveryMs =
    rescanEvery === undefined ? undefined : parseDuration(rescanEvery, '--rescan-every');
  if (!(await isVolumeArchive(args[0] as string)))
    throw new TidemarkError(
      'usage',
      `${args[0]} is the archive of a device: watch needs the archive of a folder`,
    );
  const stop = new AbortController();
  const onSignal = (): void => stop.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  let startedAt = 0;
  try {
    await (
      await engine()
    ).watchVolume(args[0] as string, {
      everyMs,
      ...(rescanEveryMs !== undefined ? { rescanEveryMs } : {}),
      signal: stop.signal,
      ...(values['no-btrfs-snapshot'] ? { useSnapshots: false } : {}),
      ...(minFree ? { minFree } : {}),
      ...(retention ? { retention } : {}),
      onPointStart: () => (startedAt = performance.now()),
      onNote: (line) => warn(`note: ${line}`),
      onPoint: ({ result, error, pruned, pruneError }) => {
        if (result)
          reportPoint(result, values.json === true, out, performance.now() - startedAt, pruned);
        if (pruneError !== undefined) warn(`retention after this point: ${errorLine(pruneError)}`);
        if (!result) warn(errorLine(error));
      },
    });
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  return 0;
}

function errorLine(error: unknown): string {
  return error instanceof TidemarkError
    ? error.message
    : `internal error: ${(error as Error)?.message}`;
}

async function history(rest: string[], out: Out): Promise<number> {
  const { values, args } = parse<FlagValues>(rest, { json: { type: 'boolean' } }, 2);
  const versions = await (await engine()).volumeHistory(args[0] as string, args[1] as string);
  if (values.json) out(JSON.stringify(versions));
  else
    for (const v of versions)
      out(
        `state ${v.state}  ${v.time}  ${v.type}  ${formatBytes(v.size)}  mode ${v.mode.toString(8)}  ${v.contentHash ? `content ${shortHash(v.contentHash)}` : v.target !== undefined ? `-> ${v.target}` : ''}`.trimEnd(),
      );
  return 0;
}

async function diff(rest: string[], out: Out): Promise<number> {
  const { values, args } = parse<FlagValues>(rest, { json: { type: 'boolean' } }, 3);
  const report = await (
    await engine()
  ).volumeDiff(args[0] as string, integer(args[1], 'state A'), integer(args[2], 'state B'));
  if (values.json) out(JSON.stringify(report));
  else {
    const sign = { added: '+', removed: '-', modified: '~' } as const;
    for (const e of report.entries) {
      const size =
        e.change === 'modified'
          ? `${formatBytes(e.sizeA ?? 0)} -> ${formatBytes(e.sizeB ?? 0)}`
          : formatBytes(e.sizeA ?? e.sizeB ?? 0);
      out(`${sign[e.change]} ${e.path}${e.type === 'dir' ? '/' : ''}  ${size}`);
    }
    out(
      `${report.added} added, ${report.removed} removed, ${report.modified} modified: +${formatBytes(report.bytesAdded)} -${formatBytes(report.bytesRemoved)}`,
    );
  }
  return 0;
}
