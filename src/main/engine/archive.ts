import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { TidemarkError } from '../../shared/errors.js';
import { Catalog, CATALOG_NAME } from './catalog.js';
import { MANIFEST_NAME, parseManifest, type ArchiveManifest } from './format/archive-manifest.js';
import { UpdateReader } from './format/update-reader.js';
import { unlockStore } from './encryption/unlock.js';
import { MapCache } from './map-cache.js';
import { indexUpdate } from './update-index.js';
import { partitionUpdates, UPDATE_PREFIX } from './update-names.js';
import { catalogDrift, rebuildCatalogFrom, type CatalogDrift } from './catalog-sync.js';
import { archiveIoError } from './storage/io-errors.js';
import { TEMP_MARK } from './storage/folder-store.js';
import {
  archiveTarget,
  indexDirOf,
  readTargetManifest,
  type ArchiveTarget,
  type ClosableStore,
} from './archive-target.js';

export const LOCK_NAME = 'lock';

export interface OpenOptions {
  /** Writers take the archive lock and finish or clean up what a crash interrupted. */
  write: boolean;
}

/**
 * An archive on a secondary: manifest, update objects and catalog. Opening it for writing takes
 * its lock and removes leftovers of interrupted writes. Every open brings the catalog up to date
 * with the live updates (catalog-sync.ts): those committed but not yet recorded (a crash between
 * the two, or states another catalog added), and those another catalog's prune replaced. So an
 * interrupted operation either completed or simply did not occur, and nothing is read from, or
 * referenced in, an update that is gone.
 */
export class Archive {
  private constructor(
    readonly dir: string,
    readonly manifest: ArchiveManifest,
    readonly store: ClosableStore,
    readonly catalog: Catalog,
    private readonly lock: ArchiveLock | null,
  ) {
    this.mapCache = MapCache.in(dir);
  }

  /** The latest state's block map, cached beside the catalog. */
  readonly mapCache: MapCache;

  /** `dir` is a folder or an `s3://BUCKET/PREFIX` name (see archive-target.ts). */
  static async open(dir: string, options: OpenOptions): Promise<Archive> {
    const target = await archiveTarget(dir);
    const abs = target.localDir;
    let store = target.openStore();
    let manifest: ArchiveManifest;
    let indexDir = abs;
    try {
      manifest = target.remote ? await readTargetManifest(target, store) : await readManifest(abs);
      store = await unlockStore(store, manifest, target.name);
      indexDir = indexDirOf(target, manifest);
      if (indexDir !== abs || target.remote) await fsp.mkdir(indexDir, { recursive: true });
    } catch (err) {
      await store.close();
      throw err;
    }
    let lock: ArchiveLock | null = null;
    try {
      lock = options.write ? await ArchiveLock.take(abs) : null;
      let catalog = await openCatalog(indexDir, manifest, options.write);
      if (options.write) await store.removeIncomplete();
      // The one listing of an open: the catalog is checked against it without a request per object.
      const listing = partitionUpdates(await store.list(UPDATE_PREFIX));
      let drift = catalogDrift(catalog, listing);
      if (!options.write && !catalog.inMemory && (drift.gone || drift.unrecorded.length > 0)) {
        // A reader may not write the catalog (the secondary may be read-only, a writer may hold
        // it), so it reads the whole index from the live updates into memory instead. A catalog
        // that only names updates a collapse replaced still reads whole: they are deleted after
        // a writer's catalog moved on.
        catalog.close();
        catalog = memoryCatalog(manifest);
        drift = catalogDrift(catalog, listing);
      }
      const archive = new Archive(indexDir, manifest, store, catalog, lock);
      await archive.follow(listing, drift);
      return archive;
    } catch (err) {
      await store.close().catch(() => undefined);
      await lock?.release();
      throw err;
    }
  }

  /** Opens an archive whose manifest has just been written by init (the caller holds the lock). */
  static async adopt(dir: string, lock: ArchiveLock, given?: ArchiveTarget): Promise<Archive> {
    const target = given ?? (await archiveTarget(dir));
    const raw = target.openStore();
    const manifest = target.remote
      ? await readTargetManifest(target, raw)
      : await readManifest(target.localDir);
    const store = await unlockStore(raw, manifest, target.name);
    const indexDir = indexDirOf(target, manifest);
    await fsp.mkdir(indexDir, { recursive: true });
    const catalog = await openCatalog(indexDir, manifest, true);
    return new Archive(indexDir, manifest, store, catalog, lock);
  }

  /** The live update objects, oldest state first (not those a committed collapse replaced). */
  async updateNames(): Promise<string[]> {
    return partitionUpdates(await this.store.list(UPDATE_PREFIX)).live;
  }

  /**
   * Brings the catalog up to date with `listing`, against which it stands as `drift`: indexes
   * the updates it lacks; a writer rebuilds it when it names one that is not live (a reader got
   * an index in memory instead, see open), then deletes what a committed collapse replaced, once
   * the catalog names the result.
   */
  private async follow(
    listing: { live: string[]; superseded: string[] },
    drift: CatalogDrift,
  ): Promise<void> {
    if (drift.stale && this.lock) await rebuildCatalogFrom(this, listing.live, false);
    else {
      for (const name of drift.unrecorded)
        await indexUpdate(this.catalog, await UpdateReader.open(this.store, name));
    }
    if (this.lock) for (const name of listing.superseded) await this.store.delete(name);
  }

  private closed = false;

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.catalog.close();
    await this.store.close();
    await this.lock?.release();
  }
}

function memoryCatalog(manifest: ArchiveManifest): Catalog {
  const memory = Catalog.open(':memory:');
  memory.setMeta('archiveId', manifest.archiveId);
  return memory;
}

export async function readManifest(dir: string): Promise<ArchiveManifest> {
  let bytes: Buffer;
  try {
    bytes = await fsp.readFile(path.join(dir, MANIFEST_NAME));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      const exists = fs.existsSync(dir);
      throw new TidemarkError(
        exists ? 'archive.foreign' : 'archive.not-found',
        exists ? `${dir} is not a Tidemark archive (no ${MANIFEST_NAME})` : `no archive at ${dir}`,
      );
    }
    throw archiveIoError(err, MANIFEST_NAME);
  }
  return parseManifest(bytes, dir);
}

async function openCatalog(
  dir: string,
  manifest: ArchiveManifest,
  write: boolean,
): Promise<Catalog> {
  const file = path.join(dir, CATALOG_NAME);
  if (!write) {
    // A reader never writes the secondary (it may be read-only): an unusable catalog is rebuilt
    // in memory from the update objects instead.
    try {
      const catalog = Catalog.open(file, true);
      if (catalog.getMeta('archiveId') === manifest.archiveId) return catalog;
      catalog.close();
    } catch (err) {
      if (err instanceof TidemarkError && err.code === 'archive.newer-format') throw err;
    }
    return memoryCatalog(manifest);
  }
  let catalog: Catalog;
  try {
    catalog = Catalog.open(file);
  } catch (err) {
    if (!(err instanceof TidemarkError) || err.code !== 'archive.corrupt') throw err;
    // The catalog is only an index: set the damaged one aside and rebuild it from the updates.
    await fsp.rename(file, `${file}.damaged-${Date.now()}`).catch(() => undefined);
    catalog = Catalog.open(file);
  }
  const id = catalog.getMeta('archiveId');
  if (id !== manifest.archiveId) {
    catalog.clear();
    catalog.setMeta('archiveId', manifest.archiveId);
  }
  return catalog;
}

/** Lock files this process holds now. */
const heldHere = new Set<string>();

/**
 * One writer at a time. The lock file names its holder; a lock left by a process that no longer
 * runs on this host (kill -9, power loss) is taken over, so a crash never blocks the next backup.
 */
export class ArchiveLock {
  private constructor(private readonly file: string) {}

  static async take(dir: string): Promise<ArchiveLock> {
    const file = path.join(dir, LOCK_NAME);
    const me = JSON.stringify({ pid: process.pid, host: os.hostname() });
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        await createLockFile(file, me);
        heldHere.add(file);
        return new ArchiveLock(file);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST')
          throw archiveIoError(err, 'taking the archive lock');
      }
      const holder = await readHolder(file);
      // Our own pid on a lock we do not hold: left behind when the folder moved away under us
      // and came back (its release removed nothing); a long-running watch must not block on it.
      const ownStale = holder?.pid === process.pid && !heldHere.has(file);
      if (holder && holder.host === os.hostname() && (ownStale || !isProcessAlive(holder.pid))) {
        await fsp.rm(file, { force: true });
        continue;
      }
      if (!holder) {
        // Written by a holder killed between create and write: stale by construction after a moment.
        const age =
          Date.now() -
          (await fsp
            .stat(file)
            .then((s) => s.mtimeMs)
            .catch(() => 0));
        if (age > 10_000) {
          await fsp.rm(file, { force: true });
          continue;
        }
      }
      throw new TidemarkError(
        'archive.locked',
        `the archive is in use by another Tidemark process (${holder ? `pid ${holder.pid} on ${holder.host}` : 'starting'})`,
        { retryable: true },
      );
    }
    throw new TidemarkError('archive.locked', 'could not take the archive lock', {
      retryable: true,
    });
  }

  async release(): Promise<void> {
    heldHere.delete(this.file);
    await fsp.rm(this.file, { force: true }).catch(() => undefined);
  }
}

/**
 * Creates the lock holding `content`, or fails with EEXIST. The content is written to a temporary
 * file that is then hard-linked into place (atomic, put-if-absent), so the lock never exists
 * empty. (Created, then filled, a holder SIGKILLed in between left an empty lock that reads as
 * "another process is starting" and refused the next backups for 10 s; test/torture found it.)
 * FAT and exFAT have no hard links: there the lock is created, then filled.
 */
async function createLockFile(file: string, content: string): Promise<void> {
  const temp = `${file}${TEMP_MARK}${randomBytes(6).toString('hex')}`;
  let written = false;
  try {
    await fsp.writeFile(temp, content, { flag: 'wx' });
    written = true;
    await fsp.link(temp, file);
    return;
  } catch (err) {
    // EEXIST: the lock is held. Other than a link refused by the filesystem, a real failure.
    if (!written || (err as NodeJS.ErrnoException).code === 'EEXIST') throw err;
  } finally {
    // A temporary left by a kill before this is removed by the next writer (removeIncomplete).
    await fsp.rm(temp, { force: true }).catch(() => undefined);
  }
  const handle = await fsp.open(file, 'wx');
  try {
    await handle.writeFile(content);
    await handle.close();
  } catch (err) {
    // Created but not filled (a full disk): an empty lock would block the next backup, so it goes.
    await handle.close().catch(() => undefined);
    await fsp.rm(file, { force: true }).catch(() => undefined);
    throw err;
  }
}

async function readHolder(file: string): Promise<{ pid: number; host: string } | undefined> {
  try {
    const h = JSON.parse(await fsp.readFile(file, 'utf8')) as { pid: number; host: string };
    return typeof h.pid === 'number' && typeof h.host === 'string' ? h : undefined;
  } catch {
    return undefined;
  }
}

/** Whether a process with this id runs on this host (EPERM: it does, as another user). */
export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
