/**
 * The CLI of retention: `prune`, `pin`, `unpin`. `runRetentionCommand` returns undefined for
 * anything that is not its business.
 */
import { TidemarkError } from '../../shared/errors.js';
import type { PruneReport } from '../../shared/retention.js';
import {
  DEFAULT_RETENTION,
  checkTimeZone,
  formatDuration,
  parseDuration,
  type RetentionSettings,
} from '../engine/retention/retention-policy.js';
import { parseMinFree, type MinFree } from '../engine/retention/space-guard.js';
import { formatBytes } from './format-human.js';
import { parse, type Options } from './parse-args.js';

type Out = (line: string) => void;

const POLICY_OPTIONS: Options = {
  'keep-within': { type: 'string' },
  'keep-hourly': { type: 'string' },
  'keep-daily': { type: 'string' },
  'keep-weekly': { type: 'string' },
  'time-zone': { type: 'string' },
};

const PRUNE_OPTIONS: Options = {
  'dry-run': { type: 'boolean' },
  json: { type: 'boolean' },
  now: { type: 'string' },
  ...POLICY_OPTIONS,
};

/** The retention flags of `watch`: prune's policy flags, and `--prune` for the default policy. */
export const WATCH_RETENTION_OPTIONS: Options = { prune: { type: 'boolean' }, ...POLICY_OPTIONS };

/**
 * The retention a watch applies after each point: undefined (keep every state) unless `--prune`
 * or a policy flag was given; the flags are read as `prune` reads them, with the same errors.
 */
export function watchRetention(values: Record<string, unknown>): RetentionSettings | undefined {
  const policy = Object.keys(POLICY_OPTIONS).filter((flag) => values[flag] !== undefined);
  if (values.prune !== true && policy.length === 0) return undefined;
  return retentionSettings(
    Object.fromEntries(policy.map((flag) => [flag, values[flag] as string | boolean | undefined])),
  );
}

/** The line a watch prints after a point whose retention dropped states. */
export function describePruned(r: PruneReport): string {
  const ids = r.states.filter((s) => !s.keep).map((s) => s.id);
  return `pruned ${r.dropped} state${r.dropped === 1 ? '' : 's'} (${ids.join(', ')}): ${formatBytes(r.bytesFreed)} freed`;
}

function count(value: string | boolean | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !/^\d+$/.test(value))
    throw new TidemarkError('usage', `${flag} needs a whole number, got ${String(value)}`);
  return Number(value);
}

export function retentionSettings(
  values: Record<string, string | boolean | undefined>,
): RetentionSettings {
  const settings = { ...DEFAULT_RETENTION };
  const within = values['keep-within'];
  if (within !== undefined) {
    const ms = typeof within === 'string' ? parseDuration(within) : undefined;
    if (ms === undefined)
      throw new TidemarkError(
        'usage',
        `--keep-within needs a duration such as 24h, 90m, 2d or 1w, got ${String(within)}`,
      );
    settings.keepWithinMs = ms;
  }
  settings.hourly = count(values['keep-hourly'], '--keep-hourly') ?? settings.hourly;
  settings.daily = count(values['keep-daily'], '--keep-daily') ?? settings.daily;
  const weekly = count(values['keep-weekly'], '--keep-weekly');
  if (weekly !== undefined) settings.weekly = weekly;
  const zone = values['time-zone'];
  if (zone !== undefined) {
    const known = typeof zone === 'string' ? checkTimeZone(zone) : undefined;
    if (known === undefined)
      throw new TidemarkError(
        'usage',
        `--time-zone needs an IANA time zone such as Europe/Berlin or UTC, got ${String(zone)}`,
      );
    settings.timeZone = known;
  }
  return settings;
}

/** `--min-free` of snapshot and watch: a size (500M, 2G) or a percentage of the secondary. */
export function minFreeOption(value: unknown): MinFree | undefined {
  if (value === undefined) return undefined;
  return parseMinFree(String(value));
}

function stateArg(text: string | undefined): number {
  if (text === undefined || !/^\d+$/.test(text))
    throw new TidemarkError('usage', `a state is a whole number, got ${String(text)}`);
  return Number(text);
}

export async function runRetentionCommand(
  command: string | undefined,
  rest: string[],
  out: Out,
): Promise<number | undefined> {
  switch (command) {
    case 'prune': {
      const { values, args } = parse(rest, PRUNE_OPTIONS, 1);
      let now = new Date();
      if (values.now !== undefined) {
        now = new Date(String(values.now));
        if (typeof values.now !== 'string' || Number.isNaN(now.getTime()))
          throw new TidemarkError(
            'usage',
            `--now needs an ISO 8601 time, got ${String(values.now)}`,
          );
      }
      const { pruneArchiveAt } = await import('../engine/retention/retention-engine.js');
      const report = await pruneArchiveAt(args[0] as string, {
        now,
        settings: retentionSettings(values),
        dryRun: values['dry-run'] === true,
      });
      if (values.json) out(JSON.stringify(report));
      else printPrune(report, out);
      return 0;
    }
    case 'pin':
    case 'unpin': {
      const { values, args } = parse(rest, { json: { type: 'boolean' } }, 2);
      const { pinStateAt } = await import('../engine/retention/retention-engine.js');
      const result = await pinStateAt(args[0] as string, stateArg(args[1]), command === 'pin');
      if (values.json) out(JSON.stringify(result));
      else
        out(
          `state ${result.state} ${result.pinned ? 'pinned' : 'unpinned'}${result.changed ? '' : ' (it already was)'}`,
        );
      return 0;
    }
    default:
      return undefined;
  }
}

function printPrune(r: PruneReport, out: Out): void {
  const s = r.settings;
  out(
    `retention as of ${r.now}: every state within ${formatDuration(s.keepWithinMs)}, hourly for ${s.hourly} h, daily for ${s.daily} d, weekly ${s.weekly === null ? 'forever' : `for ${s.weekly} w`} (hours, days and weeks of ${s.timeZone})`,
  );
  for (const st of r.states)
    out(`  ${st.keep ? 'keep' : 'drop'}  state ${st.id}  ${st.time}  ${st.reason}`);
  if (r.dryRun) out(`dry run: would drop ${r.dropped} of ${r.states.length} states`);
  else
    out(
      `dropped ${r.dropped} of ${r.states.length} states in ${r.runs.length} collapse(s): ${formatBytes(r.bytesBefore)} → ${formatBytes(r.bytesAfter)}, ${formatBytes(r.bytesFreed)} freed`,
    );
}
