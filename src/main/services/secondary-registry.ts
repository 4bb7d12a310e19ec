// The extra secondaries (fan-out) of each archive, in secondaries.json in the data dir: local
// settings of this machine, readable while the main secondary is unplugged.
import * as path from 'node:path';
import { z } from 'zod';
import { readJson, writeJsonAtomic } from './atomic-file.js';
import { defaultDataDir } from './data-dir.js';

const registryFile = z.object({
  version: z.literal(1),
  archives: z.record(z.string(), z.object({ secondaries: z.array(z.string()) })),
});
type Registry = z.output<typeof registryFile>;

function registryPath(dataDir = defaultDataDir()): string {
  return path.join(dataDir, 'secondaries.json');
}

async function read(dataDir?: string): Promise<Registry> {
  return readJson(registryPath(dataDir), registryFile, { version: 1, archives: {} });
}

/** The extra secondaries of `archive` (a normalised name: absolute path or s3:// URL). */
export async function secondariesOf(archive: string, dataDir?: string): Promise<string[]> {
  // An unreadable registry (another user's data dir) must not break commands that never use it.
  const registry = await read(dataDir).catch(() => undefined);
  return registry?.archives[archive]?.secondaries ?? [];
}

export async function recordSecondary(archive: string, target: string): Promise<void> {
  const registry = await read();
  const list = registry.archives[archive]?.secondaries ?? [];
  if (!list.includes(target)) registry.archives[archive] = { secondaries: [...list, target] };
  await writeJsonAtomic(registryPath(), registry);
}

/** Returns whether `target` was one of them. */
export async function forgetSecondary(archive: string, target: string): Promise<boolean> {
  const registry = await read();
  const list = registry.archives[archive]?.secondaries ?? [];
  if (!list.includes(target)) return false;
  const left = list.filter((t) => t !== target);
  if (left.length > 0) registry.archives[archive] = { secondaries: left };
  else delete registry.archives[archive];
  await writeJsonAtomic(registryPath(), registry);
  return true;
}
