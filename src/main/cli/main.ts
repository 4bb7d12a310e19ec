import * as fs from 'node:fs';
import * as path from 'node:path';
import { isTidemarkError, TidemarkError } from '../../shared/errors.js';
import { startReadAhead, stopAllReadAhead } from '../engine/device/read-ahead.js';
import { defaultDataDir } from '../services/data-dir.js';
import { takeRemoteFlags } from './remote-flags.js';
import { USAGE } from './usage.js';

type Out = (line: string) => boolean;

// Each command loads only the modules it needs: Node's start-up and loading every engine
// (about 200 modules) used to take most of a short command's time, `--help` included.
const CACHE_COMMANDS = new Set(['flush', 'snapshot', 'states', 'restore', 'watch']);
const VOLUME_COMMANDS = new Set([
  'init',
  'snapshot',
  'states',
  'verify',
  'restore',
  'watch',
  'history',
  'diff',
]);
const RETENTION_COMMANDS = new Set(['prune', 'pin', 'unpin']);

/**
 * Whether the local cache (or fan-out, which queues in it) may take this command; false only
 * when it surely declines, decided without loading it: its `snapshot`, `restore` and plain
 * `states` are its own only with --cache-dir/--cache-limit or with a setting remembered in the
 * data dir (cache-settings.json for the cache, secondaries.json for fan-out).
 */
function cacheMayTake(command: string, rest: string[]): boolean {
  if (command !== 'snapshot' && command !== 'restore' && command !== 'states') return true;
  if (
    rest.some((a) => a.startsWith('--cache-') || (command === 'states' && a.startsWith('--json')))
  )
    return true;
  const dataDir = defaultDataDir();
  return ['cache-settings.json', 'secondaries.json'].some((name) =>
    fs.existsSync(path.join(dataDir, name)),
  );
}

/**
 * `snapshot` of a device archive: the primary is read ahead (into the page cache only) while the
 * engine loads, so that a cold disk is already busy with it when the scan starts.
 */
async function readAheadPrimary(rest: string[]): Promise<void> {
  const { MANIFEST_NAME } = await import('../engine/format/archive-manifest.js');
  for (const arg of rest) {
    if (arg.startsWith('-')) continue;
    let manifest: { primary?: { kind?: unknown; path?: unknown } };
    try {
      manifest = JSON.parse(
        fs.readFileSync(path.join(arg, MANIFEST_NAME), 'utf8'),
      ) as typeof manifest;
    } catch {
      continue;
    }
    const primary = manifest.primary;
    if (primary?.kind === 'device' && typeof primary.path === 'string')
      startReadAhead(path.resolve(primary.path));
    return;
  }
}

async function version(): Promise<string> {
  const file = new URL('../../../../package.json', import.meta.url);
  const { version } = JSON.parse(await fs.promises.readFile(file, 'utf8')) as { version: string };
  return version;
}

async function run(argv: string[]): Promise<number> {
  const [command, ...rest] = takeRemoteFlags(argv);
  const out: Out = (line) => process.stdout.write(line + '\n');
  switch (command) {
    case undefined:
    case '-h':
    case '--help':
    case 'help':
      out(USAGE);
      return command === undefined ? 2 : 0;
    case '-V':
    case '--version':
      out(await version());
      return 0;
    case 'serve':
      return (await import('./serve.js')).serve(rest);
  }
  if (command === 'snapshot') await readAheadPrimary(rest);
  if (command === 'secondary') {
    const { runSecondaryCommand } = await import('./secondary-commands.js');
    const code = await runSecondaryCommand(command, rest, out);
    if (code !== undefined) return code;
  }
  if (CACHE_COMMANDS.has(command) && cacheMayTake(command, rest)) {
    const { runCacheCommand } = await import('./cache-commands.js');
    const code = await runCacheCommand(command, rest, out);
    if (code !== undefined) return code;
  }
  if (VOLUME_COMMANDS.has(command)) {
    const { runVolumeCommand } = await import('./volume-commands.js');
    const code = await runVolumeCommand(command, rest, out);
    if (code !== undefined) return code;
  }
  if (RETENTION_COMMANDS.has(command)) {
    const { runRetentionCommand } = await import('./retention-commands.js');
    const code = await runRetentionCommand(command, rest, out);
    if (code !== undefined) return code;
  }
  const { runDeviceCommand } = await import('./device-commands.js');
  const code = await runDeviceCommand(command, rest, out);
  if (code !== undefined) return code;
  throw new TidemarkError('usage', `unknown command ${command} (see tidemark --help)`);
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

// A command that ends before its scan started (an error, a locked archive) stops its read-ahead.
run(process.argv.slice(2))
  .finally(stopAllReadAhead)
  .then(
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
