// Argument parsing shared by every CLI module: strict flags, a fixed number of positionals,
// and a bad command line reported as one `usage` line.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { TidemarkError } from '../../shared/errors.js';

export type Options = NonNullable<ParseArgsConfig['options']>;

/** Flag values; `string[]` only for flags declared `multiple`. */
export type FlagValues = Record<string, string | boolean | string[] | undefined>;

export function parse<V extends FlagValues = Record<string, string | boolean | undefined>>(
  args: string[],
  options: Options,
  positionals: number,
): { values: V; args: string[] } {
  let parsed;
  try {
    parsed = parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (err) {
    throw new TidemarkError('usage', (err as Error).message.split('\n')[0] ?? 'bad arguments');
  }
  if (parsed.positionals.length !== positionals) {
    throw new TidemarkError(
      'usage',
      `expected ${positionals} argument(s), got ${parsed.positionals.length} (see tidemark --help)`,
    );
  }
  return { values: parsed.values as V, args: parsed.positionals };
}

/** The same parse, without errors: lets a command module see whether a command line is its own. */
export function tryParse(args: string[], options: Options) {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch {
    return undefined;
  }
}
