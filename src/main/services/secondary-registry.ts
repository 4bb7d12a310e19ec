// The extra secondaries (fan-out) of each archive, in secondaries.json in the data dir: local
// settings of this machine, readable while the main secondary is unplugged. The app's settings
// of each (endpoint, limits, retention) sit beside the list; credentials never do (secret-store.ts).
import * as path from 'node:path';
import { z } from 'zod';
import { retentionSchema } from '../../shared/jobs.js';
import type { SecondarySettingsView } from '../../shared/secondaries.js';
import { readJson, writeJsonAtomic } from './atomic-file.js';
import { defaultDataDir } from './data-dir.js';

const settingsSchema = z.object({
  kind: z.enum(['folder', 's3']),
  endpoint: z.string().optional(),
  region: z.string().optional(),
  pathStyle: z.boolean().optional(),
  credentials: z.enum(['set', 'chain']).optional(),
  passphraseSet: z.boolean(),
  bwlimitBytes: z.number().int().positive().nullable(),
  retention: retentionSchema.nullable(),
  queueLimitBytes: z.number().int().positive().nullable(),
});

// Version 2 added `settings`; version 1 files (CLI only) are read as they are and rewritten as 2.
const registryFile = z.object({
  version: z.union([z.literal(1), z.literal(2)]),
  archives: z.record(
    z.string(),
    z.object({
      secondaries: z.array(z.string()),
      /** Added by the app (absent for secondaries the CLI added and nobody changed). */
      settings: z.record(z.string(), settingsSchema).optional(),
    }),
  ),
});
type Registry = z.output<typeof registryFile>;

function registryPath(dataDir = defaultDataDir()): string {
  return path.join(dataDir, 'secondaries.json');
}

async function read(dataDir?: string): Promise<Registry> {
  return readJson(registryPath(dataDir), registryFile, { version: 2, archives: {} });
}

/** The extra secondaries of `archive` (a normalised name: absolute path or s3:// URL). */
export async function secondariesOf(archive: string, dataDir?: string): Promise<string[]> {
  // An unreadable registry (another user's data dir) must not break commands that never use it.
  const registry = await read(dataDir).catch(() => undefined);
  return registry?.archives[archive]?.secondaries ?? [];
}

/** The app's settings of each extra secondary of `archive` that has some. */
export async function secondarySettingsOf(
  archive: string,
  dataDir?: string,
): Promise<Record<string, SecondarySettingsView>> {
  const registry = await read(dataDir).catch(() => undefined);
  return registry?.archives[archive]?.settings ?? {};
}

export async function recordSecondary(
  archive: string,
  target: string,
  dataDir?: string,
  settings?: SecondarySettingsView,
): Promise<void> {
  const registry = await read(dataDir);
  const entry = registry.archives[archive] ?? { secondaries: [] };
  if (!entry.secondaries.includes(target)) entry.secondaries = [...entry.secondaries, target];
  if (settings) entry.settings = { ...entry.settings, [target]: settings };
  registry.archives[archive] = entry;
  await writeJsonAtomic(registryPath(dataDir), { ...registry, version: 2 });
}

/** Returns whether `target` was one of them. */
export async function forgetSecondary(
  archive: string,
  target: string,
  dataDir?: string,
): Promise<boolean> {
  const registry = await read(dataDir);
  const entry = registry.archives[archive];
  if (!entry?.secondaries.includes(target)) return false;
  entry.secondaries = entry.secondaries.filter((t) => t !== target);
  if (entry.settings) delete entry.settings[target];
  if (entry.secondaries.length === 0) delete registry.archives[archive];
  await writeJsonAtomic(registryPath(dataDir), { ...registry, version: 2 });
  return true;
}
