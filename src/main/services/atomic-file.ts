// Small JSON files (jobs, settings) that survive a crash at any instant: written to a temp name,
// fsynced, renamed over the old one, and the folder fsynced so the rename itself is durable.
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import type { z } from 'zod';
import { TidemarkError } from '../../shared/errors.js';

export async function writeJsonAtomic(file: string, value: unknown): Promise<void> {
  const dir = path.dirname(file);
  await fsp.mkdir(dir, { recursive: true });
  const temp = path.join(dir, `.${path.basename(file)}.${process.pid}.tmp`);
  const handle = await fsp.open(temp, 'w', 0o600);
  try {
    // A temp file left by a crash keeps its old mode when reopened: secrets go through here.
    await handle.chmod(0o600);
    await handle.writeFile(JSON.stringify(value, null, 2) + '\n');
    await handle.sync();
  } finally {
    await handle.close();
  }
  await fsp.rename(temp, file);
  const dirHandle = await fsp.open(dir, 'r');
  try {
    await dirHandle.sync();
  } finally {
    await dirHandle.close();
  }
}

/** The file's value, or `fallback` when it does not exist; a damaged file is an error, not a reset. */
export async function readJson<S extends z.ZodType>(
  file: string,
  schema: S,
  fallback: z.output<S>,
): Promise<z.output<S>> {
  let text: string;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return fallback;
    throw err;
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new TidemarkError('internal', `${file} is not valid JSON: fix or remove it`);
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new TidemarkError(
      'internal',
      `${file} is damaged (${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'invalid'}): fix or remove it`,
    );
  }
  return parsed.data;
}
