import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { TidemarkError } from '../../../shared/errors.js';
import type { StateRow } from '../catalog.js';
import { CATALOG_NAME } from '../catalog.js';
import { MANIFEST_NAME, parseManifest, type ArchiveManifest } from '../format/archive-manifest.js';
import { MAP_CACHE_NAME } from '../map-cache.js';
import { FolderStore, makeDirs, syncDirectory, TEMP_MARK } from '../storage/folder-store.js';
import { partitionUpdates, stateIdOf, UPDATE_PREFIX } from '../update-names.js';

/** What the cache remembers of the secondary, as of the last time it was reached. */
export interface SecondaryView {
  archiveDir: string;
  archiveId: string;
  /** Every state on the secondary then, oldest first (for `states` while it is away). */
  states: StateRow[];
}

const ORIGIN_NAME = 'secondary.json';

/**
 * The local cache of one archive: a folder under the cache dir, named after the archive's path,
 * shaped like an archive so that the engine's capture, restore and catalog code run on it
 * unchanged. It holds a copy of the manifest, the anchor (the last state the secondary had, as a
 * full block map or entry listing with no blocks, see docs/FORMAT.md "Local cache"), the cached
 * updates and a catalog of them, and `secondary.json`, the secondary's state list.
 */
export class CacheEntry {
  private constructor(
    readonly dir: string,
    readonly archiveDir: string,
  ) {}

  /** The entry of `archiveDir` in `cacheDir` (nothing is created). */
  static of(cacheDir: string, archiveDir: string): CacheEntry {
    const abs = path.resolve(archiveDir);
    const key = createHash('sha256').update(abs).digest('hex').slice(0, 16);
    return new CacheEntry(path.join(path.resolve(cacheDir), key), abs);
  }

  get manifestFile(): string {
    return path.join(this.dir, MANIFEST_NAME);
  }

  exists(): boolean {
    return fs.existsSync(this.manifestFile);
  }

  async manifest(): Promise<ArchiveManifest> {
    try {
      return parseManifest(await fsp.readFile(this.manifestFile), this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT')
        throw new TidemarkError(
          'cache.empty',
          `no local cache of ${this.archiveDir} in ${path.dirname(this.dir)}`,
        );
      throw err;
    }
  }

  /** Creates the entry for the archive `manifest` describes (kept if it already is its). */
  async adopt(manifest: ArchiveManifest): Promise<void> {
    if (this.exists()) {
      const mine = await this.manifest();
      if (mine.archiveId === manifest.archiveId) return;
      if ((await this.pendingIds()).length > 0)
        throw new TidemarkError(
          'archive.foreign',
          `${this.archiveDir} now holds another archive than the one whose updates are cached in ${this.dir}: attach the right disk, or remove that cache folder`,
        );
      await this.clear();
    }
    await makeDirs(this.dir);
    await writeAtomic(this.manifestFile, JSON.stringify(manifest, null, 2) + '\n');
  }

  async readSecondary(): Promise<SecondaryView | undefined> {
    try {
      return JSON.parse(
        await fsp.readFile(path.join(this.dir, ORIGIN_NAME), 'utf8'),
      ) as SecondaryView;
    } catch {
      return undefined;
    }
  }

  async writeSecondary(view: SecondaryView): Promise<void> {
    await writeAtomic(path.join(this.dir, ORIGIN_NAME), JSON.stringify(view));
  }

  /** The live update objects in the cache, oldest first (the anchor among them). */
  async updates(): Promise<Array<{ id: number; name: string }>> {
    const store = new FolderStore(this.dir);
    const { live } = partitionUpdates(await store.list(UPDATE_PREFIX));
    return live.map((name) => ({ id: stateIdOf(name) as number, name }));
  }

  async updateIds(): Promise<number[]> {
    return (await this.updates()).map((u) => u.id);
  }

  /** Cached updates not yet on the secondary: every update after the anchor, oldest first. */
  async pending(): Promise<Array<{ id: number; name: string }>> {
    const view = await this.readSecondary();
    const anchor = view?.states.at(-1)?.id ?? -1;
    return (await this.updates()).filter((u) => u.id > anchor);
  }

  async pendingIds(): Promise<number[]> {
    return (await this.pending()).map((u) => u.id);
  }

  /** Bytes the cached updates take (the anchor excluded: it is bookkeeping, not data). */
  async pendingBytes(): Promise<number> {
    return this.bytesOf(await this.pending());
  }

  /**
   * What the cache holds: its cached updates (what the limit bounds), and the bytes it takes
   * besides them: the anchor (the secondary's last state, entries or block map), the block map's
   * copy, the catalog and the scan hashes. Those do not grow with the updates cached, so they are
   * outside the limit, but they are on the same disk, so they are reported.
   */
  async usage(): Promise<{ pending: number; bytes: number; overheadBytes: number }> {
    const pending = await this.pending();
    const updates = new Set(pending.map((u) => path.join(this.dir, u.name)));
    let overheadBytes = 0;
    const walk = async (dir: string): Promise<void> => {
      for (const d of await fsp.readdir(dir, { withFileTypes: true }).catch(() => [])) {
        const p = path.join(dir, d.name);
        if (d.isDirectory()) await walk(p);
        else if (d.isFile() && !updates.has(p))
          overheadBytes += (await fsp.stat(p).catch(() => ({ size: 0 }))).size;
      }
    };
    await walk(this.dir);
    return { pending: pending.length, bytes: await this.bytesOf(pending), overheadBytes };
  }

  private async bytesOf(updates: Array<{ name: string }>): Promise<number> {
    let total = 0;
    for (const u of updates) total += (await fsp.stat(path.join(this.dir, u.name))).size;
    return total;
  }

  /** Forgets every update and the catalog (the manifest, map and secondary view stay). */
  async resetUpdates(): Promise<void> {
    await fsp.rm(path.join(this.dir, UPDATE_PREFIX), { recursive: true, force: true });
    for (const f of [CATALOG_NAME, `${CATALOG_NAME}-journal`])
      await fsp.rm(path.join(this.dir, f), { force: true });
    await syncDirectory(this.dir).catch(() => undefined);
  }

  async clear(): Promise<void> {
    await this.resetUpdates();
    for (const f of [MANIFEST_NAME, ORIGIN_NAME, MAP_CACHE_NAME])
      await fsp.rm(path.join(this.dir, f), { force: true });
  }
}

/** Temp, fsync, rename, fsync the folder: a crash leaves the old file or the new one. */
export async function writeAtomic(file: string, text: string): Promise<void> {
  const temp = `${file}${TEMP_MARK}${process.pid}`;
  const handle = await fsp.open(temp, 'w');
  try {
    await handle.writeFile(text);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await fsp.rename(temp, file);
  await syncDirectory(path.dirname(file));
}
