/**
 * The CLI of the local update cache: `snapshot` and `states` and `restore` of an archive whose
 * cache is on (`--cache-dir` / `--cache-limit`, remembered in cache-settings.json in the data
 * dir), and `flush`. `runCacheCommand` returns undefined for what is not its business.
 */
import * as path from 'node:path';
import { z } from 'zod';
import { TidemarkError } from '../../shared/errors.js';
import type { SecondaryStatus, StateInfo } from '../../shared/states.js';
import {
  flushCache,
  primeCache,
  restoreFromCache,
  snapshotWithCache,
  statesWithLocation,
  type CacheSettings,
  type CacheSnapshotResult,
} from '../engine/cache/cached-engine.js';
import { listStates } from '../engine/device-engine.js';
import type { StateSelector } from '../engine/restore.js';
import { isVolumeArchive, listVolumeStates } from '../engine/volume-engine.js';
import { readJson, writeJsonAtomic } from '../services/atomic-file.js';
import { defaultDataDir } from '../services/data-dir.js';
import { formatBytes, shortHash } from './format-human.js';
import { parseDuration } from './volume-commands.js';
import { parseSize } from './parse-size.js';
import { parse, tryParse, type Options } from './parse-args.js';
import { minFreeOption } from './retention-commands.js';
import { describeSpaceGuard } from '../../shared/retention.js';
import {
  defaultCacheDir,
  describeSecondaries,
  fanOutAfter,
  mirrorsOf,
} from './secondary-commands.js';
import { knownStatesOf } from '../engine/fanout/fan-out.js';
import { pruneArchiveAt } from '../engine/retention/retention-engine.js';
import type { RetentionSettings } from '../engine/retention/retention-policy.js';
import type { PruneReport } from '../../shared/retention.js';
import { describePruned, WATCH_RETENTION_OPTIONS, watchRetention } from './retention-commands.js';

export const DEFAULT_CACHE_LIMIT = 2 * 2 ** 30;

type Out = (line: string) => void;

const CACHE_OPTIONS: Options = {
  'cache-dir': { type: 'string' },
  'cache-limit': { type: 'string' },
  json: { type: 'boolean' },
};

/** Snapshot, watch and flush also take the secondary's space guard threshold (retention). */
const GUARDED_OPTIONS: Options = { ...CACHE_OPTIONS, 'min-free': { type: 'string' } };

const settingsFile = z.object({
  version: z.literal(1),
  archives: z.record(z.string(), z.object({ cacheDir: z.string(), limitBytes: z.number() })),
});

function registryPath(): string {
  return path.join(defaultDataDir(), 'cache-settings.json');
}

/** The cache folder remembered for `archiveDir`, if any (fan-out keeps its queues there). */
export async function rememberedCacheDir(archiveDir: string): Promise<string | undefined> {
  const registry = await readJson(registryPath(), settingsFile, {
    version: 1 as const,
    archives: {},
  }).catch(() => undefined);
  return registry?.archives[path.resolve(archiveDir)]?.cacheDir;
}

/** The cache settings of `archiveDir`: the flags, else what was remembered; undefined: cache off. */
async function settingsFor(
  archiveDir: string,
  values: Record<string, unknown>,
): Promise<CacheSettings | undefined> {
  const abs = path.resolve(archiveDir);
  const file = registryPath();
  const dirFlag = values['cache-dir'];
  const limitFlag = values['cache-limit'];
  const asked = dirFlag !== undefined || limitFlag !== undefined;
  const empty: z.output<typeof settingsFile> = { version: 1, archives: {} };
  // Without cache flags an unreadable settings file (another user's data dir) means "cache off":
  // it must not break commands that never asked for the cache.
  const registry = asked
    ? await readJson(file, settingsFile, empty)
    : await readJson(file, settingsFile, empty).catch(() => empty);
  const known = registry.archives[abs];
  // Fan-out queues its updates in the local cache: an archive with extra secondaries has it on.
  if (!asked && !known && (await mirrorsOf(archiveDir).catch(() => [])).length > 0)
    return { cacheDir: defaultCacheDir(), limitBytes: DEFAULT_CACHE_LIMIT };
  if (!asked) return known;
  const settings: CacheSettings = {
    cacheDir: path.resolve(
      typeof dirFlag === 'string'
        ? dirFlag
        : (known?.cacheDir ?? path.join(defaultDataDir(), 'cache')),
    ),
    limitBytes:
      typeof limitFlag === 'string'
        ? parseSize(limitFlag, '--cache-limit')
        : (known?.limitBytes ?? DEFAULT_CACHE_LIMIT),
  };
  if (known?.cacheDir !== settings.cacheDir || known.limitBytes !== settings.limitBytes) {
    registry.archives[abs] = settings;
    await writeJsonAtomic(file, registry);
  }
  return settings;
}

export async function runCacheCommand(
  command: string | undefined,
  rest: string[],
  out: Out,
): Promise<number | undefined> {
  switch (command) {
    case 'flush':
      return flush(rest, out);
    case 'snapshot': {
      const options = { ...GUARDED_OPTIONS, 'no-btrfs-snapshot': { type: 'boolean' as const } };
      const guess = tryParse(rest, options);
      if (!guess || guess.positionals.length !== 1) return undefined;
      const settings = await settingsFor(guess.positionals[0] as string, guess.values);
      if (!settings) return undefined;
      return snapshot(rest, options, settings, out);
    }
    case 'states': {
      const guess = tryParse(rest, CACHE_OPTIONS);
      if (!guess || guess.positionals.length !== 1) return undefined;
      const settings = await settingsFor(guess.positionals[0] as string, guess.values);
      if (!settings && !guess.values.json) return undefined;
      return states(guess.positionals[0] as string, settings, guess.values.json === true, out);
    }
    case 'restore':
      return restore(rest, out);
    case 'watch': {
      const options = {
        ...GUARDED_OPTIONS,
        every: { type: 'string' as const },
        // Accepted for the same command line: with the cache on, every point rescans anyway.
        'rescan-every': { type: 'string' as const },
        'no-btrfs-snapshot': { type: 'boolean' as const },
        ...WATCH_RETENTION_OPTIONS,
      };
      const guess = tryParse(rest, options);
      // A command line naming the cache is the cache's: its own parse error is the one to tell
      // (the folder watch would only say that it knows no --cache-dir).
      if (!guess && rest.some((a) => a.startsWith('--cache-'))) parse(rest, options, 1);
      if (!guess || guess.positionals.length !== 1) return undefined;
      const dir = guess.positionals[0] as string;
      // Extra secondaries alone do not take the live (native watcher) watch of a folder away.
      const asked =
        guess.values['cache-dir'] !== undefined || guess.values['cache-limit'] !== undefined;
      if (guess.values.every === undefined && !asked && !(await rememberedCacheDir(dir)))
        return undefined;
      // A bad retention flag is refused before the cache settings are remembered.
      watchRetention(guess.values);
      const settings = await settingsFor(dir, guess.values);
      if (!settings) return undefined;
      return watch(rest, options, settings, out);
    }
    default:
      return undefined;
  }
}

async function snapshot(
  rest: string[],
  options: Options,
  settings: CacheSettings,
  out: Out,
): Promise<number> {
  const { values, args } = parse(rest, options, 1);
  const minFree = minFreeOption(values['min-free']);
  const result = await snapshotWithCache(args[0] as string, {
    ...settings,
    ...(values['no-btrfs-snapshot'] ? { useSnapshots: false } : {}),
    ...(minFree ? { minFree } : {}),
  });
  const secondaries = await fanOutAfter(args[0] as string, settings.cacheDir);
  if (values.json) out(JSON.stringify(secondaries ? { ...result, secondaries } : result));
  else for (const line of describeSnapshot(result, secondaries)) out(line);
  warnAfter(result);
  return 0;
}

/**
 * `watch` with the cache on: a point every DURATION found by rescanning (the native watcher's
 * journal lives on the secondary, so it cannot run while the secondary is away). Each point goes
 * to the secondary or the cache like `snapshot`; an error is reported and the watch goes on.
 */
async function watch(
  rest: string[],
  options: Options,
  settings: CacheSettings,
  out: Out,
): Promise<number> {
  const { values, args } = parse(rest, options, 1);
  const retention = watchRetention(values);
  if (typeof values.every !== 'string')
    throw new TidemarkError('usage', 'watch needs --every DURATION (e.g. 5m)');
  const everyMs = parseDuration(values.every);
  const dir = args[0] as string;
  const minFree = minFreeOption(values['min-free']);
  const stop = new AbortController();
  const onSignal = (): void => stop.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    while (!stop.signal.aborted) {
      await new Promise<void>((resolve) => {
        const done = (): void => {
          clearTimeout(t);
          stop.signal.removeEventListener('abort', done);
          resolve();
        };
        const t = setTimeout(done, everyMs);
        stop.signal.addEventListener('abort', done);
      });
      if (stop.signal.aborted) break;
      try {
        const result = await snapshotWithCache(dir, {
          ...settings,
          ...(values['no-btrfs-snapshot'] ? { useSnapshots: false } : {}),
          ...(minFree ? { minFree } : {}),
        });
        // Extra secondaries get (or queue) the new update before retention may merge the state
        // they last received into it: they never see a gap.
        const secondaries = await fanOutAfter(dir, settings.cacheDir);
        const { pruned, pruneError } = await retainOnSecondary(dir, settings, result, retention);
        const extra = { ...(secondaries ? { secondaries } : {}), ...(pruned ? { pruned } : {}) };
        if (values.json) out(JSON.stringify({ ...result, ...extra }));
        else {
          for (const line of describeSnapshot(result, secondaries)) out(line);
          if (pruned) out(describePruned(pruned));
        }
        warnAfter(result);
        if (pruneError)
          process.stderr.write(`tidemark: retention after this point: ${pruneError.message}\n`);
      } catch (err) {
        process.stderr.write(`tidemark: ${(err as Error).message}\n`);
      }
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  return 0;
}

/**
 * The watch's retention after a point that recorded a state on the secondary. A point kept in the
 * cache prunes nothing: retention works on the secondary, and the cached states wait until they
 * are shipped. A failure is reported with the point, which stands.
 */
async function retainOnSecondary(
  dir: string,
  settings: CacheSettings,
  result: CacheSnapshotResult,
  retention: RetentionSettings | undefined,
): Promise<{ pruned?: PruneReport; pruneError?: Error }> {
  if (!retention || result.location !== 'secondary' || !result.changed) return {};
  let pruned: PruneReport;
  try {
    pruned = await pruneArchiveAt(dir, { now: new Date(), settings: retention });
  } catch (err) {
    return { pruneError: err as Error };
  }
  if (pruned.dropped === 0) return {};
  try {
    // The cache keeps the secondary's state list for when it is away: not the dropped ones.
    await primeCache(dir, settings);
  } catch (err) {
    return { pruned, pruneError: err as Error };
  }
  return { pruned };
}

/** What the user must hear about besides the point: the cache's collapses, the space guard. */
function warnAfter(result: CacheSnapshotResult): void {
  if (result.collapsed.length > 0 || result.cache.bytes > result.cache.limitBytes)
    process.stderr.write(`tidemark: ${cacheFullLine(result)}\n`);
  if (result.spaceGuard)
    process.stderr.write(`tidemark: ${describeSpaceGuard(result.spaceGuard)}\n`);
}

function describeSnapshot(r: CacheSnapshotResult, secondaries?: SecondaryStatus[]): string[] {
  const lines: string[] = describeSecondaries(secondaries ?? []);
  if (r.shipped.length > 0)
    lines.push(
      `shipped ${r.shipped.length} cached update(s) to the secondary: states ${r.shipped.join(', ')}`,
    );
  if (r.unavailable) lines.push(`secondary not available: ${r.unavailable}`);
  const where = r.location === 'cache' ? 'in the local cache' : 'on the secondary';
  if (r.state)
    lines.push(
      `state ${r.state.id}  ${r.state.time}  ${r.state.changedBlocks} blocks changed  ${formatBytes(r.state.storedBytes)} stored  hash ${shortHash(r.state.stateHash)}  ${where}`,
    );
  else lines.push('nothing changed: no state recorded');
  for (const c of r.collapsed)
    lines.push(
      `cache full: collapsed states ${c.from}..${c.to} into state ${c.to} (removed ${c.removedStates.join(', ')}; ${formatBytes(c.bytesBefore)} -> ${formatBytes(c.bytesAfter)})`,
    );
  if (r.cache.pending > 0)
    lines.push(
      `cache: ${r.cache.pending} update(s) waiting, ${formatBytes(r.cache.bytes)} of ${formatBytes(r.cache.limitBytes)}, plus ${formatBytes(r.cache.overheadBytes)} for the secondary's last state and indexes (${r.cache.dir})`,
    );
  return lines;
}

function cacheFullLine(r: CacheSnapshotResult): string {
  const over = r.cache.bytes > r.cache.limitBytes;
  const collapsed = r.collapsed.flatMap((c) => c.removedStates);
  return (
    `the local cache is full: ` +
    (collapsed.length > 0 ? `states ${collapsed.join(', ')} were collapsed into later ones` : '') +
    (over
      ? `${collapsed.length > 0 ? '; ' : ''}it still takes ${formatBytes(r.cache.bytes)}, over its limit of ${formatBytes(r.cache.limitBytes)} (one update that cannot be split; nothing was dropped)`
      : '')
  );
}

async function listSecondary(dir: string): Promise<StateInfo[]> {
  return (await isVolumeArchive(dir)) ? listVolumeStates(dir) : listStates(dir);
}

async function states(
  dir: string,
  settings: CacheSettings | undefined,
  json: boolean,
  out: Out,
): Promise<number> {
  const cacheDir = settings?.cacheDir ?? path.join(defaultDataDir(), 'cache');
  const list = await statesWithLocation(dir, cacheDir, () => listSecondary(dir));
  const mirrors = await mirrorsOf(dir);
  if (mirrors.length > 0) {
    // Which extra secondaries hold each state (as of the last time each was reached).
    const held = await knownStatesOf(dir, mirrors, cacheDir);
    for (const s of list)
      (s as typeof s & { secondaries: string[] }).secondaries = mirrors.filter((m) =>
        held.get(m)?.has(s.id),
      );
  }
  if (json) out(JSON.stringify(list));
  else
    for (const s of list)
      out(
        `state ${s.id}  ${s.time}  ${s.changedBlocks} blocks changed  ${formatBytes(s.storedBytes)} stored  hash ${shortHash(s.stateHash)}  ${s.location === 'cache' ? 'in the local cache' : s.location === 'both' ? 'on the secondary and in the cache' : 'on the secondary'}`,
      );
  return 0;
}

async function flush(rest: string[], out: Out): Promise<number> {
  const { values, args } = parse(rest, GUARDED_OPTIONS, 1);
  const dir = args[0] as string;
  const settings = (await settingsFor(dir, values)) ?? {
    cacheDir: path.join(defaultDataDir(), 'cache'),
    limitBytes: DEFAULT_CACHE_LIMIT,
  };
  const minFree = minFreeOption(values['min-free']);
  const mirrors = await mirrorsOf(dir);
  // With extra secondaries, the main one may be away while they are not: flush ships to those.
  const result = await flushCache(dir, { ...settings, ...(minFree ? { minFree } : {}) }).catch(
    (err: unknown) => {
      if (mirrors.length === 0 || !(err instanceof TidemarkError)) throw err;
      return { shipped: [] as number[], unavailable: err.message };
    },
  );
  const secondaries = await fanOutAfter(dir, settings.cacheDir);
  if (values.json) out(JSON.stringify(secondaries ? { ...result, secondaries } : result));
  else {
    if ('unavailable' in result) out(`main secondary not available: ${result.unavailable}`);
    else if (result.shipped.length === 0) out('nothing cached: nothing to ship');
    else
      out(`shipped ${result.shipped.length} cached update(s): states ${result.shipped.join(', ')}`);
    for (const line of describeSecondaries(secondaries ?? [])) out(line);
  }
  if ('spaceGuard' in result && result.spaceGuard)
    process.stderr.write(`tidemark: ${describeSpaceGuard(result.spaceGuard)}\n`);
  return 0;
}

const RESTORE_OPTIONS: Options = {
  ...CACHE_OPTIONS,
  state: { type: 'string' },
  at: { type: 'string' },
  to: { type: 'string' },
  path: { type: 'string', multiple: true },
  rollback: { type: 'boolean' },
  force: { type: 'boolean' },
};

/** A restore the cache serves (the state is cached); undefined hands it to the usual restore. */
async function restore(rest: string[], out: Out): Promise<number | undefined> {
  const guess = tryParse(rest, RESTORE_OPTIONS);
  if (!guess || guess.positionals.length !== 1) return undefined;
  const values = guess.values as Record<string, string | string[] | boolean | undefined>;
  const dir = guess.positionals[0] as string;
  const settings = await settingsFor(dir, values);
  if (!settings || typeof values.to !== 'string') return undefined;
  let selector: StateSelector;
  if (typeof values.state === 'string' && /^\d+$/.test(values.state))
    selector = { stateId: Number(values.state) };
  else if (typeof values.at === 'string' && !Number.isNaN(new Date(values.at).getTime()))
    selector = { at: new Date(values.at) };
  else return undefined;
  const report = await restoreFromCache(dir, settings.cacheDir, selector, values.to, {
    force: values.force === true,
    rollback: values.rollback === true,
    ...(Array.isArray(values.path) ? { paths: values.path } : {}),
  });
  if (!report) return undefined;
  if (values.json) out(JSON.stringify({ ...report, location: 'cache' }));
  else
    out(
      'path' in report && (report.path !== '' || report.paths)
        ? `restored ${report.paths?.join(', ') ?? report.path} of state ${report.state} from the local cache to ${report.target}: every file matches its recorded hash`
        : `restored state ${report.state} from the local cache to ${report.target}: state hash matches`,
    );
  return 0;
}
