// The engine's thread: every bulk read, write and hash happens here, never on the main thread.
// Requests run concurrently (the archive lock keeps two writers off one archive); a cancelled
// request stops at its next progress report.
import { parentPort, workerData } from 'node:worker_threads';
import { isTidemarkError, TidemarkError, type ErrorInfo } from '../../shared/errors.js';
import type { StateInfo } from '../../shared/states.js';
import { addSecondary, fanOut, secondaryStatuses } from '../engine/fanout/fan-out.js';
import { s3Settings, setTargetAccess } from '../engine/storage/remote-access.js';
import { isS3Name, parseS3Name } from '../engine/storage/s3-name.js';
import { readManifest } from '../engine/archive.js';
import type { StateRow } from '../engine/catalog.js';
import {
  initArchive,
  listStates,
  restoreArchive,
  snapshotArchive,
  verify,
} from '../engine/device-engine.js';
import {
  cacheStatus,
  flushCache,
  primeCache,
  restoreFromCache,
  snapshotWithCache,
  statesWithLocation,
  type CacheSnapshotResult,
} from '../engine/cache/cached-engine.js';
import { pinStateAt, pruneArchiveAt } from '../engine/retention/retention-engine.js';
import { DEFAULT_RETENTION } from '../engine/retention/retention-policy.js';
import { browseVolume, measureVolume, searchVolume } from '../engine/volume-browse.js';
import {
  initVolumeArchive,
  isVolumeArchive,
  isVolumeManifest,
  listVolumeStates,
  restoreVolume,
  snapshotVolume,
  verifyVolume,
  volumeDiff,
  volumeHistory,
} from '../engine/volume-engine.js';
import type { SnapshotOutcome } from '../../shared/api.js';
import type {
  EngineMethod,
  EngineMethods,
  FromWorker,
  ToWorker,
  WorkerData,
} from './rpc-protocol.js';

const port = parentPort;
if (port === null) throw new Error('engine-worker.js runs as a worker thread only');
const options = (workerData ?? { allowCrash: false }) as WorkerData;

const cancelled = new Set<number>();
const post = (message: FromWorker): void => port.postMessage(message);

function stateInfo(row: StateRow): StateInfo {
  const info: StateInfo = {
    id: row.id,
    time: row.time,
    changedBlocks: row.changedBlocks,
    storedBytes: row.storedBytes,
    stateHash: row.stateHash,
    consistency: row.consistency,
  };
  if (row.consistencyReason) info.consistencyReason = row.consistencyReason;
  return info;
}

type Handlers = {
  [M in EngineMethod]: (
    params: EngineMethods[M]['params'],
    onProgress: (done: number, total: number) => void,
  ) => Promise<EngineMethods[M]['result']>;
};

// Every method but init dispatches on the archive's kind: the app and `tidemark serve` hold
// device and volume jobs side by side.
const handlers: Handlers = {
  init: async (p, onProgress) => {
    if (p.mode === 'volume') {
      const r = await initVolumeArchive(p.primary, p.archive, {
        ...(p.blockSize ? { blockSize: p.blockSize } : {}),
        onProgress,
      });
      return stateInfo(r.state);
    }
    return stateInfo(
      await initArchive(p.primary, p.archive, {
        onProgress,
        ...(p.blockSize ? { blockSize: p.blockSize } : {}),
      }),
    );
  },
  snapshot: async (p, onProgress) => {
    if (p.cache)
      return cachedOutcome(await snapshotWithCache(p.archive, { ...p.cache, onProgress }));
    if (await isVolumeArchive(p.archive)) {
      const r = await snapshotVolume(p.archive, { onProgress });
      const guard = 'spaceGuard' in r && r.spaceGuard ? { spaceGuard: r.spaceGuard } : {};
      return r.changed
        ? { changed: true, state: stateInfo(r.state), ...guard }
        : { changed: false, ...guard };
    }
    const r = await snapshotArchive(p.archive, { onProgress });
    const guard = r.spaceGuard ? { spaceGuard: r.spaceGuard } : {};
    return r.changed
      ? { changed: true, state: stateInfo(r.state), ...guard }
      : { changed: false, ...guard };
  },
  states: async (p) => {
    const list = async (): Promise<StateInfo[]> =>
      (await isVolumeArchive(p.archive)) ? listVolumeStates(p.archive) : listStates(p.archive);
    return p.cacheDir ? statesWithLocation(p.archive, p.cacheDir, list) : list();
  },
  secondaries: async (p) => {
    if (p.access) setTargetAccess(p.access);
    if (!p.ship) return secondaryStatuses(p.archive, p.targets, p.cacheDir);
    return fanOut(p.archive, p.targets, {
      cacheDir: p.cacheDir,
      ...(p.policies ? { policies: p.policies } : {}),
      ...(p.now ? { clock: { now: () => new Date(p.now as string) } } : {}),
    });
  },
  addSecondary: async (p) => {
    setTargetAccess(p.access);
    if (isS3Name(p.target)) {
      const { checkS3Bucket } = await import('../engine/storage/s3-check.js');
      await checkS3Bucket(parseS3Name(p.target), s3Settings(p.target));
    }
    return addSecondary(p.archive, p.target, { cacheDir: p.cacheDir });
  },
  restore: async (p, onProgress) => {
    if (p.cacheDir) {
      const fromCache = await restoreFromCache(
        p.archive,
        p.cacheDir,
        { stateId: p.stateId },
        p.target,
        {
          rollback: p.rollback,
          force: p.force,
          onProgress,
          ...(p.path ? { path: p.path } : {}),
          ...(p.paths?.length ? { paths: p.paths } : {}),
        },
      );
      if (fromCache) return fromCache;
    }
    if (await isVolumeArchive(p.archive)) {
      return restoreVolume(p.archive, { stateId: p.stateId }, p.target, {
        ...(p.path ? { path: p.path } : {}),
        ...(p.paths?.length ? { paths: p.paths } : {}),
        force: p.force,
        onProgress,
      });
    }
    if (p.path || p.paths?.length)
      throw new TidemarkError('usage', 'a device is restored whole, not one file or folder');
    return restoreArchive(p.archive, { stateId: p.stateId }, p.target, {
      rollback: p.rollback,
      force: p.force,
      onProgress,
    });
  },
  verify: async (p, onProgress) =>
    (await isVolumeArchive(p.archive))
      ? verifyVolume(p.archive, { deep: p.deep, onProgress })
      : verify(p.archive, { deep: p.deep, onProgress }),
  prune: (p) =>
    pruneArchiveAt(p.archive, {
      now: new Date(p.now),
      settings: p.settings ?? DEFAULT_RETENTION,
      dryRun: p.dryRun,
    }),
  pin: (p) => pinStateAt(p.archive, p.stateId, p.pinned),
  flush: (p) => flushCache(p.archive, p.cache),
  primeCache: (p) => primeCache(p.archive, p.cache),
  cacheStatus: (p) => cacheStatus(p.archive, p.cache),
  inspect: async (p) => {
    const m = await readManifest(p.archive);
    return {
      mode: isVolumeManifest(m) ? 'volume' : 'device',
      primary: m.primary.path,
      primarySize: m.primary.size,
      blockSize: m.blockSize,
    };
  },
  browse: (p) => browseVolume(p.archive, p.stateId, p.path, p.offset, p.limit),
  diff: (p) => volumeDiff(p.archive, p.from, p.to),
  history: (p) => volumeHistory(p.archive, p.path),
  search: (p) => searchVolume(p.archive, p.stateId, p.query, p.limit),
  measure: (p) => measureVolume(p.archive, p.stateId, p.path),
};

/** A cached snapshot's result in the API's shape (rows become StateInfo). */
function cachedOutcome(r: CacheSnapshotResult): SnapshotOutcome {
  const extra = {
    location: r.location,
    shipped: r.shipped,
    collapsed: r.collapsed,
    cache: {
      pending: r.cache.pending,
      bytes: r.cache.bytes,
      limitBytes: r.cache.limitBytes,
      collapsed: r.collapsed.reduce((n, c) => n + c.removedStates.length, 0),
    },
    ...(r.unavailable ? { unavailable: r.unavailable } : {}),
    ...(r.spaceGuard ? { spaceGuard: r.spaceGuard } : {}),
  };
  return r.changed && r.state
    ? { changed: true, state: stateInfo(r.state), ...extra }
    : { changed: false, ...extra };
}

function errorInfo(err: unknown): ErrorInfo {
  if (isTidemarkError(err)) return err.toInfo();
  const message = err instanceof Error ? err.message : String(err);
  return { code: 'internal', message: `internal error: ${message}`, retryable: false };
}

async function run(id: number, method: EngineMethod, params: unknown): Promise<void> {
  // Progress is throttled here, not in the host: posting a message per chunk costs a copy.
  let lastPost = 0;
  const onProgress = (done: number, total: number): void => {
    if (cancelled.has(id)) throw new TidemarkError('job.cancelled', 'cancelled');
    const now = performance.now();
    if (now - lastPost < 100 && done < total) return;
    lastPost = now;
    post({ kind: 'progress', id, done, total });
  };
  try {
    const handler = handlers[method] as (p: unknown, o: typeof onProgress) => Promise<unknown>;
    const value = await handler(params, onProgress);
    post({ kind: 'result', id, value });
  } catch (err) {
    // A bug's stack goes to the log; the caller (and the person) gets the one-line error.
    if (!isTidemarkError(err) && err instanceof Error && err.stack)
      post({ kind: 'log', id, level: 'warn', message: err.stack });
    post({ kind: 'error', id, error: errorInfo(err) });
  } finally {
    cancelled.delete(id);
  }
}

port.on('message', (message: ToWorker) => {
  switch (message.kind) {
    case 'call':
      void run(message.id, message.method, message.params);
      break;
    case 'cancel':
      cancelled.add(message.id);
      break;
    case 'crash':
      if (options.allowCrash) {
        // An uncaught exception, as a bug deep in a native module would raise.
        setImmediate(() => {
          throw new Error('crash requested by a test');
        });
      }
      break;
  }
});
