import { spawnSync } from 'node:child_process';
import * as path from 'node:path';

export const CLI = path.resolve(import.meta.dirname, '../../bin/tidemark.js');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the real CLI (as built by `npm run build:node`) in a child process. */
export function tidemark(...args: string[]): CliResult {
  return tidemarkWith(process.env, ...args);
}

/** Runs the real CLI with the environment `env` (another machine: its own state dir, keys...). */
export function tidemarkWith(env: NodeJS.ProcessEnv, ...args: string[]): CliResult {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** Runs the CLI and parses its JSON output; fails loudly on a non-zero exit. */
export function tidemarkJson<T>(...args: string[]): T {
  const r = tidemark(...args, '--json');
  if (r.code !== 0) throw new Error(`tidemark ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}
