import * as fs from 'node:fs';
import { TidemarkError } from '../../shared/errors.js';
import { parseBwlimit, setRemoteAccess } from '../engine/storage/remote-access.js';

const VALUED = new Set(['--endpoint', '--region', '--bwlimit', '--passphrase-file']);
const BOOLEAN = new Set(['--encrypt', '--no-encrypt']);

/**
 * Takes the flags about remote archives and encryption out of `argv`, wherever they stand, and
 * sets them for this process; returns the other arguments for the command's own parser.
 */
export function takeRemoteFlags(argv: string[]): string[] {
  const rest: string[] = [];
  const values = new Map<string, string>();
  const flags = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--') {
      rest.push(...argv.slice(i));
      break;
    }
    const eq = arg.indexOf('=');
    const name = eq > 0 ? arg.slice(0, eq) : arg;
    if (VALUED.has(name)) {
      const value = eq > 0 ? arg.slice(eq + 1) : argv[++i];
      if (value === undefined || value === '')
        throw new TidemarkError('usage', `${name} needs a value`);
      values.set(name, value);
    } else if (BOOLEAN.has(arg)) flags.add(arg);
    else rest.push(arg);
  }
  if (flags.has('--encrypt') && flags.has('--no-encrypt'))
    throw new TidemarkError('usage', '--encrypt and --no-encrypt exclude each other');
  const endpoint = values.get('--endpoint');
  if (endpoint !== undefined && !/^https?:\/\/[^\s/]+/.test(endpoint))
    throw new TidemarkError(
      'usage',
      `--endpoint needs an http:// or https:// URL, got ${endpoint}`,
    );
  const region = values.get('--region');
  const bw = values.get('--bwlimit');
  const file = values.get('--passphrase-file');
  let passphrase: string | undefined;
  if (file !== undefined) {
    try {
      passphrase = fs.readFileSync(file, 'utf8').replace(/\r?\n$/, '');
    } catch (err) {
      throw new TidemarkError(
        'usage',
        `cannot read the passphrase file ${file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`,
      );
    }
  }
  setRemoteAccess({
    s3: {
      ...(endpoint ? { endpoint } : {}),
      ...(region ? { region } : {}),
      ...(bw !== undefined ? { bwlimit: parseBwlimit(bw, '--bwlimit') } : {}),
    },
    ...(passphrase !== undefined ? { passphrase } : {}),
    ...(flags.size > 0 ? { encrypt: flags.has('--encrypt') } : {}),
  });
  return rest;
}
