import { isTidemarkError, TidemarkError } from '../../shared/errors.js';
import type { StateInfo } from '../../shared/states.js';
import {
  initArchive,
  listStates,
  rebuildCatalog,
  restoreArchive,
  snapshotArchive,
  verify,
} from '../engine/device-engine.js';
import type { StateSelector } from '../engine/restore.js';
import { formatBytes, shortHash } from './format-human.js';
import { minFreeOption, runRetentionCommand, RETENTION_USAGE } from './retention-commands.js';
import { describeSpaceGuard } from '../engine/retention/space-guard.js';
import { CACHE_USAGE, runCacheCommand } from './cache-commands.js';
import { runSecondaryCommand, SECONDARY_USAGE } from './secondary-commands.js';
import { REMOTE_USAGE, takeRemoteFlags } from './remote-flags.js';
import { runVolumeCommand, VOLUME_USAGE } from './volume-commands.js';
import { parse } from './parse-args.js';

const USAGE = `usage: tidemark <command> [options]

  init <primary> <archive-dir> [--block-size BYTES]   baseline: record state 0
  snapshot <archive-dir> [--min-free SIZE|PCT]       end the interval now
  states <archive-dir> [--json]                      list the states
  restore <archive-dir> (--state K | --at ISO_TIME) --to PATH [--rollback] [--force] [--json]
  verify <archive-dir> [--deep] [--json]             check every checksum
  catalog rebuild <archive-dir>                      rebuild the catalog from the updates
  serve [--host H] [--port N] [--token T] [--archive DIR]... [--allow-remote] [--data-dir DIR]

folders (volume mode):${VOLUME_USAGE}


retention (device and folder archives):${RETENTION_USAGE}

local cache (while the secondary is away):${CACHE_USAGE}

fan-out (several secondaries):${SECONDARY_USAGE}
${REMOTE_USAGE}`;

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

function integer(value: string | boolean | undefined, flag: string): number {
  if (typeof value !== 'string' || !/^\d+$/.test(value))
    throw new TidemarkError('usage', `${flag} needs a whole number`);
  return Number(value);
}

async function run(argv: string[]): Promise<number> {
  const [command, ...rest] = takeRemoteFlags(argv);
  const out = (line: string): boolean => process.stdout.write(line + '\n');
  const secondary = await runSecondaryCommand(command, rest, out);
  if (secondary !== undefined) return secondary;
  const cached = await runCacheCommand(command, rest, out);
  if (cached !== undefined) return cached;
  const volume = await runVolumeCommand(command, rest, out);
  if (volume !== undefined) return volume;
  const retention = await runRetentionCommand(command, rest, out);
  if (retention !== undefined) return retention;
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
      if ((values.state === undefined) === (values.at === undefined)) {
        throw new TidemarkError('usage', 'restore needs exactly one of --state K or --at ISO_TIME');
      }
      if (typeof values.to !== 'string')
        throw new TidemarkError('usage', 'restore needs --to PATH');
      let selector: StateSelector;
      if (values.state !== undefined) selector = { stateId: integer(values.state, '--state') };
      else {
        const at = new Date(values.at as string);
        if (Number.isNaN(at.getTime()))
          throw new TidemarkError('usage', `--at needs an ISO 8601 time, got ${String(values.at)}`);
        selector = { at };
      }
      const onProgress = progress('restoring');
      const report = await restoreArchive(args[0] as string, selector, values.to, {
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
      if (values.json) out(JSON.stringify(report));
      else {
        out(
          `${report.ok ? 'ok' : 'DAMAGED'}: ${report.updatesChecked} updates, ${report.blocksChecked} blocks (${formatBytes(report.bytesChecked)}) checked${report.deep ? `, ${report.statesChecked} state hashes recomputed` : ''}`,
        );
        for (const p of report.problems)
          out(`${p.file}: ${p.message}; affects states ${p.states.join(', ') || 'none'}`);
      }
      if (!report.ok) {
        const first = report.problems[0];
        process.stderr.write(
          `tidemark: the archive is damaged: ${first?.file}: ${first?.message} (states ${first?.states.join(', ')})\n`,
        );
      }
      return report.ok ? 0 : 1;
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
    case 'serve':
      return (await import('./serve.js')).serve(rest);
    case undefined:
    case '-h':
    case '--help':
    case 'help':
      out(USAGE);
      return command === undefined ? 2 : 0;
    default:
      throw new TidemarkError('usage', `unknown command ${command} (see tidemark --help)`);
  }
}

function exitCodeOf(err: TidemarkError): number {
  return err.code === 'usage' ? 2 : 1;
}

// A command whose work waits on nothing that keeps Node running (a bug: say, a worker thread
// awaited after it was unreferenced) would end with exit code 0 and no word: never a silent
// success. Until the command settles, leaving is an internal error.
let settled = false;
process.on('exit', () => {
  if (settled) return;
  process.stderr.write('tidemark: internal error: the command stopped before it finished\n');
  process.exitCode = 70;
});

run(process.argv.slice(2)).then(
  (code) => {
    settled = true;
    process.exitCode = code;
  },
  (err: unknown) => {
    settled = true;
    if (isTidemarkError(err)) {
      process.stderr.write(`tidemark: ${err.message}\n`);
      if (process.env.TIDEMARK_DEBUG && err.cause)
        process.stderr.write(`${String((err.cause as Error).stack ?? err.cause)}\n`);
      process.exitCode = exitCodeOf(err);
    } else {
      const e = err as Error;
      process.stderr.write(`tidemark: internal error: ${e?.message ?? String(err)}\n`);
      if (process.env.TIDEMARK_DEBUG) process.stderr.write(`${e?.stack}\n`);
      process.exitCode = 70;
    }
  },
);
