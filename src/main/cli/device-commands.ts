/**
 * The CLI of device archives (a disk or an image file as the primary): `init`, `snapshot`,
 * `states`, `restore`, `verify`, `catalog rebuild`. Loaded only for these commands, after the
 * cache, volume and retention commands have declined them. `runDeviceCommand` returns
 * undefined for anything that is not its business.
 */
import { TidemarkError } from '../../shared/errors.js';
import type { StateInfo } from '../../shared/states.js';
import {
  initArchive,
  listStates,
  rebuildCatalog,
  restoreArchive,
  snapshotArchive,
  verify,
} from '../engine/device-engine.js';
import { describeSpaceGuard } from '../../shared/retention.js';
import { integer, printVerifyReport, restoreTarget } from './common-options.js';
import { formatBytes, shortHash } from './format-human.js';
import { parse } from './parse-args.js';
import { minFreeOption } from './retention-commands.js';

type Out = (line: string) => void;

function progress(label: string): ((done: number, total: number) => void) | undefined {
  if (!process.stderr.isTTY) return undefined;
  let last = -1;
  return (done, total) => {
    const pct = total === 0 ? 100 : Math.floor((done * 100) / total);
    if (pct === last) return;
    last = pct;
    process.stderr.write(`\r${label} ${pct}%${pct === 100 ? '\n' : ''}`);
  };
}

function describeState(s: StateInfo): string {
  const grade =
    s.consistency === 'none'
      ? ` consistency none (${s.consistencyReason ?? 'unknown'})`
      : ` ${s.consistency}`;
  return `state ${s.id}  ${s.time}  ${s.changedBlocks} blocks changed  ${formatBytes(s.storedBytes)} stored  hash ${shortHash(s.stateHash)}${grade}${s.pinned ? '  pinned' : ''}`;
}

export async function runDeviceCommand(
  command: string | undefined,
  rest: string[],
  out: Out,
): Promise<number | undefined> {
  switch (command) {
    case 'init': {
      const { values, args } = parse(
        rest,
        { 'block-size': { type: 'string' }, json: { type: 'boolean' } },
        2,
      );
      const blockSize =
        values['block-size'] === undefined
          ? undefined
          : integer(values['block-size'], '--block-size');
      const state = await initArchive(
        args[0] as string,
        args[1] as string,
        blockSize ? { blockSize } : {},
      );
      if (values.json) out(JSON.stringify(state));
      else out(describeState(state));
      return 0;
    }
    case 'snapshot': {
      const { values, args } = parse(
        rest,
        { json: { type: 'boolean' }, 'min-free': { type: 'string' } },
        1,
      );
      const onProgress = progress('scanning');
      const minFree = minFreeOption(values['min-free']);
      const result = await snapshotArchive(args[0] as string, {
        ...(onProgress ? { onProgress } : {}),
        ...(minFree ? { minFree } : {}),
      });
      const guard = result.spaceGuard ? { spaceGuard: result.spaceGuard } : {};
      if (values.json)
        out(
          JSON.stringify(
            result.changed
              ? { changed: true, state: result.state, ...guard }
              : { changed: false, ...guard },
          ),
        );
      else if (result.changed) out(describeState(result.state));
      else out(`nothing changed since state ${result.latest.id}: no state recorded`);
      if (result.spaceGuard)
        process.stderr.write(`tidemark: ${describeSpaceGuard(result.spaceGuard)}\n`);
      return 0;
    }
    case 'states': {
      const { values, args } = parse(rest, { json: { type: 'boolean' } }, 1);
      const states = await listStates(args[0] as string);
      if (values.json) out(JSON.stringify(states));
      else for (const s of states) out(describeState(s));
      return 0;
    }
    case 'restore': {
      const { values, args } = parse(
        rest,
        {
          state: { type: 'string' },
          at: { type: 'string' },
          to: { type: 'string' },
          rollback: { type: 'boolean' },
          force: { type: 'boolean' },
          json: { type: 'boolean' },
        },
        1,
      );
      const { selector, to } = restoreTarget(values);
      const onProgress = progress('restoring');
      const report = await restoreArchive(args[0] as string, selector, to, {
        rollback: values.rollback === true,
        force: values.force === true,
        ...(onProgress ? { onProgress } : {}),
      });
      if (values.json) out(JSON.stringify(report));
      else {
        out(
          `restored state ${report.state} to ${report.target}: ${report.blocksWritten} blocks written (${formatBytes(report.bytesWritten)}), state hash matches`,
        );
      }
      return 0;
    }
    case 'verify': {
      const { values, args } = parse(
        rest,
        { deep: { type: 'boolean' }, json: { type: 'boolean' } },
        1,
      );
      const onProgress = progress('verifying');
      const report = await verify(args[0] as string, {
        deep: values.deep === true,
        ...(onProgress ? { onProgress } : {}),
      });
      return printVerifyReport(report, values.json === true, out);
    }
    case 'catalog': {
      const [sub, ...more] = rest;
      if (sub !== 'rebuild')
        throw new TidemarkError(
          'usage',
          'the catalog command is `tidemark catalog rebuild <archive-dir>`',
        );
      const { values, args } = parse(more, { json: { type: 'boolean' } }, 1);
      const result = await rebuildCatalog(args[0] as string);
      if (values.json) out(JSON.stringify(result));
      else out(`catalog rebuilt from ${result.states} updates`);
      if (result.damaged.length > 0) {
        process.stderr.write(
          `tidemark: damaged updates left out: ${result.damaged.join(', ')} (run tidemark verify)\n`,
        );
        return 1;
      }
      return 0;
    }
    default:
      return undefined;
  }
}
