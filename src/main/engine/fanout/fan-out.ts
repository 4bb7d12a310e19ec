/**
 * Fan-out (issue 6): an archive may have extra secondaries ("mirrors": another disk, a bucket),
 * each an archive of its own with the same archive id, its own catalog, its own retention and
 * its own encryption. After each point the new updates are queued for every one of them in the
 * local cache folder and shipped to those that can be reached; one that is away falls behind and
 * catches up in order later. The facade the CLI and the services call.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { TidemarkError } from '../../../shared/errors.js';
import type { SecondaryStatus } from '../../../shared/states.js';
import { Archive, ArchiveLock } from '../archive.js';
import { archiveTarget, prepareTarget, removeRemoteObjects } from '../archive-target.js';
import { removeArchiveFiles } from '../archive-dir.js';
import { CacheEntry } from '../cache/cache-entry.js';
import { probeSecondary } from '../cache/secondary-probe.js';
import { copyObject } from '../cache/ship.js';
import type { StateRow } from '../catalog.js';
import { systemClock, type Clock } from '../clock.js';
import { encryptionForInit } from '../encryption/unlock.js';
import { MANIFEST_NAME, newManifest } from '../format/archive-manifest.js';
import { UpdateReader } from '../format/update-reader.js';
import { MAP_CACHE_NAME } from '../map-cache.js';
import { isS3Name } from '../storage/s3-name.js';
import { indexUpdate } from '../update-index.js';
import type { RetentionSettings } from '../retention/retention-policy.js';
import { MirrorQueue, type KnownState, type MirrorView } from './mirror-queue.js';
import { shipQueue } from './mirror-ship.js';

/** What one secondary follows beyond the archive: set by the app per secondary. */
export interface SecondaryPolicy {
  /** Its own retention, applied after each run that shipped to it. */
  retention?: RetentionSettings;
  /** Bytes its queue may take; past it, later updates wait in the archive (reported). */
  queueLimitBytes?: number;
}

export interface FanOutOptions {
  /** Folder of the local cache (the queues live there). */
  cacheDir: string;
  clock?: Clock;
  onShipped?: (target: string, stateId: number) => void;
  /** Each secondary's retention and queue limit (none: keep all, no limit). */
  policies?: Record<string, SecondaryPolicy>;
}

function known(row: StateRow): KnownState {
  return { id: row.id, time: row.time, stateHash: row.stateHash };
}

/** Where the updates of the archive are now: the main secondary (if reachable) and the cache. */
interface Sources {
  archives: Archive[];
  /** Every update the archive has, by state id: which archive holds it, and its row. */
  rows: Map<number, { archive: Archive; row: StateRow }>;
  archiveId: string;
  mainReason?: string;
}

async function openSources(archiveDir: string, cacheDir: string): Promise<Sources> {
  const archives: Archive[] = [];
  const rows = new Map<number, { archive: Archive; row: StateRow }>();
  let archiveId: string | undefined;
  let mainReason: string | undefined;
  try {
    const main = await Archive.open(archiveDir, { write: false });
    archives.push(main);
    archiveId = main.manifest.archiveId;
    for (const row of main.catalog.states()) rows.set(row.id, { archive: main, row });
  } catch (err) {
    if (!(err instanceof TidemarkError)) throw err;
    mainReason = err.message;
  }
  const entry = CacheEntry.of(cacheDir, archiveDir);
  if (entry.exists()) {
    const pending = await entry.pendingIds();
    archiveId ??= (await entry.manifest()).archiveId;
    if (pending.length > 0) {
      const cache = await Archive.open(entry.dir, { write: false });
      archives.push(cache);
      for (const id of pending) {
        const row = cache.catalog.state(id);
        if (row && !rows.has(id)) rows.set(id, { archive: cache, row });
      }
    }
  }
  if (archiveId === undefined) {
    for (const a of archives) await a.close();
    throw new TidemarkError(
      'archive.unavailable',
      `${archiveDir} cannot be reached and the local cache holds nothing of it: ${mainReason ?? ''}`,
      { retryable: true },
    );
  }
  return { archives, rows, archiveId, ...(mainReason ? { mainReason } : {}) };
}

async function closeSources(sources: Sources): Promise<void> {
  for (const a of sources.archives) await a.close().catch(() => undefined);
}

/** The states after `from` the secondary still needs, oldest first, or why it cannot get them. */
function needed(sources: Sources, from: number): { rows: StateRow[]; gap?: string } {
  const rows = [...sources.rows.values()]
    .map((r) => r.row)
    .filter((r) => r.id > from)
    .sort((a, b) => a.id - b.id);
  const first = rows[0];
  if (first && first.parent !== from)
    return {
      rows,
      gap: `it has state ${from}, but the next update the archive holds (state ${first.id}) follows state ${first.parent ?? 'none'}: the main secondary's retention merged states it lacks; remove it and add it again`,
    };
  return { rows };
}

interface Filled {
  /** Why it cannot catch up, if so. */
  gap?: string;
  /** The queue's limit stopped the copying: that many states were left in the archive. */
  queueFull?: { limitBytes: number; bytes: number; notQueued: number };
}

/**
 * Copies into the queue the updates the secondary lacks, up to the queue's limit: those past it
 * stay where they are (the archive or the local cache) and are queued once the queue drains.
 */
async function fillQueue(
  queue: MirrorQueue,
  sources: Sources,
  limitBytes?: number,
): Promise<Filled> {
  const from = (await queue.knownLatest()) ?? -1;
  let { rows, gap } = needed(sources, from);
  const store = queue.store();
  try {
    if (gap) {
      // Queued states the archive no longer has on their own (the local cache collapsed them when
      // full): if the secondary has not received them, they are replaced by what replaced them.
      const seen = (await queue.readView())?.states.at(-1)?.id ?? -1;
      const again = needed(sources, seen);
      if (again.gap) return { gap };
      for (const q of await queue.updates()) if (q.id > seen) await store.delete(q.name);
      rows = again.rows;
      gap = undefined;
    }
    let bytes = limitBytes === undefined ? 0 : await queue.bytes();
    for (const [i, row] of rows.entries()) {
      const { archive } = sources.rows.get(row.id) as { archive: Archive };
      if (await store.exists(row.update)) continue;
      const reader = await UpdateReader.open(archive.store, row.update);
      // The first update always goes in: an empty queue must not stop a secondary for good.
      if (limitBytes !== undefined && bytes > 0 && bytes + reader.size > limitBytes)
        return { queueFull: { limitBytes, bytes, notQueued: rows.length - i } };
      await copyObject(archive.store, store, row.update, reader.size);
      bytes += reader.size;
    }
  } finally {
    await store.close();
  }
  return {};
}

type Opened = { archive: Archive } | { reason: string };

/** The secondary at `target`, open for writing, or why it cannot be used now. */
async function openMirror(target: string, archiveId: string): Promise<Opened> {
  try {
    if (!isS3Name(target)) {
      const availability = await probeSecondary(target, archiveId);
      if (!availability.available) return { reason: availability.reason };
    }
    const archive = await Archive.open(target, { write: true });
    if (archive.manifest.archiveId !== archiveId) {
      await archive.close();
      return { reason: `${target} holds another archive (${archive.manifest.archiveId})` };
    }
    return { archive };
  } catch (err) {
    if (!(err instanceof TidemarkError)) throw err;
    return { reason: err.message };
  }
}

function statusOf(
  target: string,
  view: MirrorView | undefined,
  fields: {
    reachable: boolean;
    queued: number;
    behind: number;
    shipped?: number[];
    error?: string;
    pruned?: SecondaryStatus['pruned'];
    queueFull?: SecondaryStatus['queueFull'];
  },
): SecondaryStatus {
  const last = view?.states.at(-1);
  return {
    target,
    encrypted: view?.encrypted ?? false,
    reachable: fields.reachable,
    lastState: last ? { id: last.id, time: last.time, stateHash: last.stateHash } : null,
    states: view?.states.length ?? 0,
    queued: fields.queued,
    behind: fields.behind,
    ...(fields.shipped ? { shipped: fields.shipped } : {}),
    ...(view?.lastContact ? { lastContact: view.lastContact } : {}),
    ...(fields.error ? { error: fields.error } : {}),
    ...(fields.pruned ? { pruned: fields.pruned } : {}),
    ...(fields.queueFull ? { queueFull: fields.queueFull } : {}),
  };
}

/**
 * Queues what each secondary lacks and ships it to those that can be reached, oldest first. A
 * secondary that is away or refuses (full, wrong disk, wrong passphrase) is reported, never
 * thrown: the others and the main secondary are not held up by it.
 */
export async function fanOut(
  archiveDir: string,
  targets: string[],
  options: FanOutOptions,
): Promise<SecondaryStatus[]> {
  if (targets.length === 0) return [];
  archiveDir = (await archiveTarget(archiveDir)).name;
  const clock = options.clock ?? systemClock;
  const sources = await openSources(archiveDir, options.cacheDir);
  const out: SecondaryStatus[] = [];
  try {
    for (const target of targets) {
      const queue = MirrorQueue.of(options.cacheDir, archiveDir, target);
      await queue.ensure();
      let lock: ArchiveLock;
      try {
        lock = await ArchiveLock.take(queue.dir);
      } catch (err) {
        // Another process ships to it now (a watch beside a flush): it is reported, not awaited.
        if (!(err instanceof TidemarkError)) throw err;
        out.push(
          statusOf(target, await queue.readView(), {
            reachable: false,
            queued: (await queue.updates()).length,
            behind: 0,
            error: err.message,
          }),
        );
        continue;
      }
      try {
        out.push(await fanOutOne(queue, sources, clock, options));
      } finally {
        await lock.release();
      }
    }
  } finally {
    await closeSources(sources);
  }
  return out;
}

function viewOf(mirror: Archive, target: string, clock: Clock, error?: string): MirrorView {
  return {
    target,
    archiveId: mirror.manifest.archiveId,
    encrypted: mirror.manifest.encryption !== undefined,
    states: mirror.catalog.states().map(known),
    lastContact: clock.now().toISOString(),
    ...(error ? { lastError: error } : {}),
  };
}

async function fanOutOne(
  queue: MirrorQueue,
  sources: Sources,
  clock: Clock,
  options: FanOutOptions,
): Promise<SecondaryStatus> {
  const target = queue.target;
  const policy = options.policies?.[target] ?? {};
  let filled = await fillQueue(queue, sources, policy.queueLimitBytes);
  const opened = await openMirror(target, sources.archiveId);
  let view = await queue.readView();
  let error = filled.gap ?? ('reason' in opened ? opened.reason : undefined);
  const shipped: number[] = [];
  let pruned: SecondaryStatus['pruned'];
  if ('archive' in opened) {
    const mirror = opened.archive;
    try {
      const ship = (): Promise<unknown> =>
        shipQueue(queue, mirror, sources.archives, (id) => {
          shipped.push(id);
          options.onShipped?.(target, id);
        });
      try {
        await ship();
        // A queue held back by its limit drains while the secondary is here: fill and ship on.
        while (filled.queueFull && !filled.gap) {
          const before = shipped.length;
          // The queue learns what the secondary has now, so nothing shipped is queued again.
          await queue.writeView(viewOf(mirror, target, clock));
          filled = await fillQueue(queue, sources, policy.queueLimitBytes);
          await ship();
          if (shipped.length === before) break;
        }
        if (policy.retention && shipped.length > 0) {
          // Loaded only here: the CLI, which never passes a policy, starts without it.
          const { pruneArchive } = await import('../retention/prune.js');
          const report = await pruneArchive(mirror, {
            now: clock.now(),
            settings: policy.retention,
          });
          const dropped = report.states.filter((st) => !st.keep).map((st) => st.id);
          pruned = { dropped, bytesFreed: report.bytesFreed };
        }
      } catch (err) {
        // Full, read-only, vanished mid-way, or blocks it lacks: the others go on; this one waits.
        if (!(err instanceof TidemarkError)) throw err;
        error = err.message;
      }
      view = viewOf(mirror, target, clock, error);
      await queue.writeView(view);
    } finally {
      await mirror.close();
    }
  } else if (view) {
    view = { ...view, ...(error ? { lastError: error } : {}) };
    await queue.writeView(view);
  }
  const queued = (await queue.updates()).length;
  const behind = needed(sources, view?.states.at(-1)?.id ?? -1).rows.length;
  return statusOf(target, view, {
    reachable: 'archive' in opened,
    queued,
    behind,
    shipped,
    ...(error ? { error } : {}),
    ...(pruned ? { pruned } : {}),
    ...(filled.queueFull ? { queueFull: filled.queueFull } : {}),
  });
}

/** Each secondary's last known state and how far behind it is; ships and writes nothing. */
export async function secondaryStatuses(
  archiveDir: string,
  targets: string[],
  cacheDir: string,
): Promise<SecondaryStatus[]> {
  if (targets.length === 0) return [];
  archiveDir = (await archiveTarget(archiveDir)).name;
  const sources = await openSources(archiveDir, cacheDir).catch(() => undefined);
  try {
    const out: SecondaryStatus[] = [];
    for (const target of targets) {
      const queue = MirrorQueue.of(cacheDir, archiveDir, target);
      let view = await queue.readView();
      let reachable = false;
      let error = view?.lastError;
      try {
        const mirror = await Archive.open(target, { write: false });
        try {
          reachable = true;
          error = undefined;
          view = {
            target,
            archiveId: mirror.manifest.archiveId,
            encrypted: mirror.manifest.encryption !== undefined,
            states: mirror.catalog.states().map(known),
            ...(view?.lastContact ? { lastContact: view.lastContact } : {}),
          };
        } finally {
          await mirror.close();
        }
      } catch (err) {
        if (!(err instanceof TidemarkError)) throw err;
        error = err.message;
      }
      const last = view?.states.at(-1)?.id ?? -1;
      out.push(
        statusOf(target, view, {
          reachable,
          queued: (await queue.updates()).length,
          behind: sources ? needed(sources, last).rows.length : 0,
          ...(error ? { error } : {}),
        }),
      );
    }
    return out;
  } finally {
    if (sources) await closeSources(sources);
  }
}

/** The ids of the states each secondary holds: read there if reachable, else as last seen. */
export async function knownStatesOf(
  archiveDir: string,
  targets: string[],
  cacheDir: string,
): Promise<Map<string, Set<number>>> {
  archiveDir = (await archiveTarget(archiveDir)).name;
  const out = new Map<string, Set<number>>();
  for (const target of targets) {
    let ids: number[] | undefined;
    const mirror = await Archive.open(target, { write: false }).catch(() => undefined);
    if (mirror) {
      try {
        ids = mirror.catalog.states().map((s) => s.id);
      } finally {
        await mirror.close();
      }
    }
    ids ??= (await MirrorQueue.of(cacheDir, archiveDir, target).readView())?.states.map(
      (s) => s.id,
    );
    out.set(target, new Set(ids ?? []));
  }
  return out;
}

/**
 * Makes `target` an extra secondary of the archive at `archiveDir`: a new archive there with the
 * same archive id and primary, encrypted under its own key when asked (always, by default, for
 * an s3:// one), holding a copy of every update the archive has now. The main secondary must be
 * reachable. A failure leaves `target` as it was found.
 */
export async function addSecondary(
  archiveDir: string,
  target: string,
  options: FanOutOptions,
): Promise<SecondaryStatus> {
  const main = await Archive.open(archiveDir, { write: false });
  try {
    const to = await archiveTarget(target);
    const from = await archiveTarget(archiveDir);
    if (to.name === from.name || to.localDir === main.dir)
      throw new TidemarkError('usage', `${target} is the archive itself`);
    const { manifest } = main;
    const encryption = await encryptionForInit(to.remote, manifest.archiveId, to.name);
    const created = await prepareTarget(to, manifest.primary.path, '`tidemark secondary add`');
    const lock = await ArchiveLock.take(to.localDir);
    let mirror: Archive | null = null;
    const store = to.openStore();
    try {
      const own = newManifest({
        archiveId: manifest.archiveId,
        createdAt: (options.clock ?? systemClock).now().toISOString(),
        blockSize: manifest.blockSize,
        primary: manifest.primary,
        ...(manifest.volume ? { volume: manifest.volume } : {}),
        ...(encryption ? { encryption } : {}),
        replicaId: randomBytes(8).toString('hex'),
      });
      const writer = await store.create(MANIFEST_NAME);
      await writer.write(Buffer.from(JSON.stringify(own, null, 2) + '\n'));
      await writer.commit();
      mirror = await Archive.adopt(to.localDir, lock, to);
      for (const name of await main.updateNames()) {
        const reader = await UpdateReader.open(main.store, name);
        await copyObject(main.store, mirror.store, name, reader.size);
        await indexUpdate(mirror.catalog, await UpdateReader.open(mirror.store, name));
      }
      const queue = MirrorQueue.of(options.cacheDir, from.name, to.name);
      await queue.remove();
      const view: MirrorView = {
        target: to.name,
        archiveId: manifest.archiveId,
        encrypted: encryption !== undefined,
        states: mirror.catalog.states().map(known),
        lastContact: (options.clock ?? systemClock).now().toISOString(),
      };
      await queue.writeView(view);
      await mirror.close();
      return statusOf(to.name, view, { reachable: true, queued: 0, behind: 0 });
    } catch (err) {
      await mirror?.close().catch(() => undefined);
      await removeRemoteObjects(to).catch(() => undefined);
      if (!to.remote) await removeArchiveFiles(to.localDir, [MAP_CACHE_NAME]);
      await lock.release();
      if (created && !to.remote) await fsp.rmdir(to.localDir).catch(() => undefined);
      throw err;
    } finally {
      await store.close();
    }
  } finally {
    await main.close();
  }
}

/** Forgets the queue of a secondary no longer fanned out to (the secondary itself is kept). */
export async function dropSecondaryQueue(
  archiveDir: string,
  target: string,
  cacheDir: string,
): Promise<void> {
  const name = (await archiveTarget(target)).name;
  const queue = MirrorQueue.of(cacheDir, (await archiveTarget(archiveDir)).name, name);
  if (fs.existsSync(queue.dir)) await queue.remove();
  await fsp.rmdir(path.dirname(queue.dir)).catch(() => undefined);
}
