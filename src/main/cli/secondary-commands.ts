/**
 * The CLI of fan-out: `secondary add|list|remove`, and the hook through which `snapshot`,
 * `watch` and `flush` ship each new update to every extra secondary of the archive.
 */
import * as path from 'node:path';
import { TidemarkError } from '../../shared/errors.js';
import type { SecondaryStatus } from '../../shared/states.js';
import { archiveTarget } from '../engine/archive-target.js';
import {
  addSecondary,
  dropSecondaryQueue,
  fanOut,
  secondaryStatuses,
} from '../engine/fanout/fan-out.js';
import { defaultDataDir } from '../services/data-dir.js';
import { forgetSecondary, recordSecondary, secondariesOf } from '../services/secondary-registry.js';
import { rememberedCacheDir } from './cache-commands.js';
import { shortHash } from './format-human.js';
import { parse, type Options } from './parse-args.js';

type Out = (line: string) => void;

const OPTIONS: Options = { 'cache-dir': { type: 'string' }, json: { type: 'boolean' } };

export function defaultCacheDir(): string {
  return path.join(defaultDataDir(), 'cache');
}

/** --cache-dir, else the folder remembered for the archive's local cache, else the default. */
async function cacheDirOf(dir: string, flag: unknown): Promise<string> {
  if (typeof flag === 'string') return path.resolve(flag);
  return (await rememberedCacheDir(dir)) ?? defaultCacheDir();
}

async function nameOf(archive: string): Promise<string> {
  return (await archiveTarget(archive)).name;
}

/** The extra secondaries of the archive named `dir` on the command line. */
export async function mirrorsOf(dir: string): Promise<string[]> {
  return secondariesOf(await nameOf(dir));
}

/** Ships to every extra secondary of `dir` (undefined: it has none). */
export async function fanOutAfter(
  dir: string,
  cacheDir: string,
): Promise<SecondaryStatus[] | undefined> {
  const targets = await mirrorsOf(dir);
  if (targets.length === 0) return undefined;
  try {
    return await fanOut(dir, targets, { cacheDir });
  } catch (err) {
    // The point itself is committed: a fan-out that cannot start is reported, not a failure.
    if (!(err instanceof TidemarkError)) throw err;
    process.stderr.write(`tidemark: extra secondaries not reached: ${err.message}\n`);
    return undefined;
  }
}

export function describeSecondaries(list: SecondaryStatus[]): string[] {
  return list.map((s) => {
    const last = s.lastState
      ? `state ${s.lastState.id} (${s.lastState.time}, hash ${shortHash(s.lastState.stateHash)})`
      : 'no state';
    const shipped = s.shipped?.length ? `, shipped ${s.shipped.join(', ')}` : '';
    const behind = s.behind > 0 ? `, ${s.behind} state(s) behind, ${s.queued} queued` : '';
    const why = s.error ? `: ${s.error}` : '';
    return `secondary ${s.target}: ${s.reachable ? 'reachable' : 'not reachable'}, last ${last}${shipped}${behind}${why}`;
  });
}

export async function runSecondaryCommand(
  command: string | undefined,
  rest: string[],
  out: Out,
): Promise<number | undefined> {
  if (command !== 'secondary') return undefined;
  const [sub, ...args] = rest;
  switch (sub) {
    case 'add': {
      const { values, args: pos } = parse(args, OPTIONS, 2);
      const dir = await nameOf(pos[0] as string);
      const target = await nameOf(pos[1] as string);
      if ((await secondariesOf(dir)).includes(target))
        throw new TidemarkError('usage', `${target} is already a secondary of ${dir}`);
      const cacheDir = await cacheDirOf(pos[0] as string, values['cache-dir']);
      const status = await addSecondary(dir, target, { cacheDir });
      await recordSecondary(dir, target);
      if (values.json) out(JSON.stringify(status));
      else out(`added ${describeSecondaries([status]).join('')}`);
      return 0;
    }
    case 'list': {
      const { values, args: pos } = parse(args, OPTIONS, 1);
      const dir = pos[0] as string;
      const cacheDir = await cacheDirOf(pos[0] as string, values['cache-dir']);
      const list = await secondaryStatuses(dir, await mirrorsOf(dir), cacheDir);
      if (values.json) out(JSON.stringify(list));
      else if (list.length === 0) out('no extra secondary');
      else for (const line of describeSecondaries(list)) out(line);
      return 0;
    }
    case 'remove': {
      const { values, args: pos } = parse(args, OPTIONS, 2);
      const dir = await nameOf(pos[0] as string);
      const target = await nameOf(pos[1] as string);
      if (!(await forgetSecondary(dir, target)))
        throw new TidemarkError('usage', `${target} is not a secondary of ${dir}`);
      const cacheDir = await cacheDirOf(pos[0] as string, values['cache-dir']);
      await dropSecondaryQueue(dir, target, cacheDir);
      if (values.json) out(JSON.stringify({ removed: target }));
      else out(`removed ${target} from the secondaries of ${dir} (its archive is kept)`);
      return 0;
    }
    default:
      throw new TidemarkError(
        'usage',
        `secondary needs add, list or remove (got ${sub ?? 'nothing'})`,
      );
  }
}
