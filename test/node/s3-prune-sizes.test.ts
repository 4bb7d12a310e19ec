import { randomFillSync } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3Client } from '@aws-sdk/client-s3';
import { Archive } from '../../src/main/engine/archive.js';
import type { Clock } from '../../src/main/engine/clock.js';
import { initArchive, snapshotArchive } from '../../src/main/engine/device-engine.js';
import { pruneArchive } from '../../src/main/engine/retention/prune.js';
import type { RetentionSettings } from '../../src/main/engine/retention/retention-policy.js';
import { setRemoteAccess } from '../../src/main/engine/storage/remote-access.js';
import { rgwSkipReason, startRgw, type Rgw } from '../helpers/rgw.js';

// Prune on an s3:// archive takes the updates' sizes from the catalog: a HEAD per update and
// prune cost ~50 s on a real S3 with 1000 states, after every point of `watch --prune`.

const skip = rgwSkipReason();
if (skip) console.warn(`S3 prune size tests skipped: ${skip}`);

const BS = 16384;
const STATES = 40;
const HOUR = 3_600_000;
const KEEP_ALL: RetentionSettings = {
  keepWithinMs: 1e12,
  hourly: 0,
  daily: 0,
  weekly: 0,
  timeZone: 'UTC',
};
const KEEP_LAST_DAY: RetentionSettings = { ...KEEP_ALL, keepWithinMs: 24 * HOUR };

/** Counts the S3 requests that ask an update object's size, through the real client. */
/** Each update the catalog names, with the size it recorded. */
function recordedSizes(archive: Archive): Map<string, number> {
  return new Map(archive.catalog.stateUpdates().map((s) => [s.update, s.storedBytes]));
}

function countUpdateHeads(): { heads: number; stop(): void } {
  const send = S3Client.prototype.send;
  const counter = { heads: 0, stop: () => void (S3Client.prototype.send = send) };
  S3Client.prototype.send = function (this: S3Client, ...args: Parameters<S3Client['send']>) {
    const command = args[0] as { constructor: { name: string }; input: { Key?: string } };
    if (command.constructor.name === 'HeadObjectCommand' && command.input.Key?.includes('updates/'))
      counter.heads++;
    return send.apply(this, args) as ReturnType<S3Client['send']>;
  } as S3Client['send'];
  return counter;
}

describe.skipIf(skip !== null)('prune on a real S3 server (Ceph RGW)', () => {
  let rgw: Rgw;
  let dir: string;
  let archive: string;
  let clock: Clock & { last: number };

  function useMachine(stateDir: string): void {
    setRemoteAccess({
      s3: {
        endpoint: rgw.endpoint,
        region: rgw.region,
        credentials: { accessKeyId: rgw.accessKeyId, secretAccessKey: rgw.secretAccessKey },
      },
      stateDir: path.join(dir, stateDir),
      passphrase: 'prune sizes',
    });
  }

  async function withArchive<T>(write: boolean, fn: (a: Archive) => Promise<T>): Promise<T> {
    const a = await Archive.open(archive, { write });
    try {
      return await fn(a);
    } finally {
      await a.close();
    }
  }

  /** Prunes as of just after the newest state; also says how many update sizes it asked. */
  async function prune(settings: RetentionSettings, dryRun = false) {
    return withArchive(!dryRun, async (a) => {
      const counter = countUpdateHeads();
      try {
        const now = new Date(clock.last + 60_000);
        const report = await pruneArchive(a, { now, settings, dryRun });
        return { report, heads: counter.heads };
      } finally {
        counter.stop();
      }
    });
  }

  /** The live updates' sizes, each asked of the store (the truth the catalog must agree with). */
  function storeSizes(): Promise<Map<string, number>> {
    return withArchive(false, async (a) => {
      const sizes = new Map<string, number>();
      for (const name of await a.updateNames()) sizes.set(name, await a.store.size(name));
      return sizes;
    });
  }

  function total(sizes: Map<string, number>): number {
    return [...sizes.values()].reduce((n, s) => n + s, 0);
  }

  beforeAll(async () => {
    rgw = startRgw('prune', 7497, 3397);
    // Not tempDir(): that one goes after each test, and the machines' catalogs span the tests.
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tidemark-s3-prune-'));
    useMachine('machine-a');
    archive = 's3://tidemark-dev/prune-sizes';
    const image = path.join(dir, 'disk.img');
    fs.writeFileSync(image, randomFillSync(Buffer.alloc(64 * BS)));
    let t = Date.parse('2026-11-01T00:00:00Z');
    clock = { now: () => new Date((clock.last = t += HOUR)), last: t };
    await initArchive(image, archive, { blockSize: BS, clock });
    for (let k = 1; k < STATES; k++) {
      const fd = fs.openSync(image, 'r+');
      fs.writeSync(fd, randomFillSync(Buffer.alloc(BS)), 0, BS, (k % 64) * BS);
      fs.closeSync(fd);
      await snapshotArchive(archive, { clock });
    }
  }, 120_000);
  afterAll(() => {
    setRemoteAccess({});
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
    rgw?.stop();
  });

  it('asks no update size of the store, and reports the bytes right before and after a collapse', async () => {
    const before = await storeSizes();
    expect(before.size).toBe(STATES);

    const idle = await prune(KEEP_ALL);
    expect(idle.report.dropped).toBe(0);
    expect(idle.heads).toBe(0);
    expect(idle.report.bytesBefore).toBe(total(before));

    const dry = await prune(KEEP_LAST_DAY, true);
    expect(dry.report.dropped).toBeGreaterThan(10);
    expect(dry.heads).toBe(0);
    expect(dry.report.bytesBefore).toBe(total(before));

    // Integration rewrites the oldest kept state's update: the catalog records its new size.
    const real = await prune(KEEP_LAST_DAY);
    expect(real.report.dropped).toBe(dry.report.dropped);
    const after = await storeSizes();
    expect(after.size).toBe(STATES - real.report.dropped);
    expect(real.report.bytesBefore).toBe(total(before));
    expect(real.report.bytesAfter).toBe(total(after));
    expect(real.report.bytesFreed).toBeGreaterThan(0);
    const recorded = await withArchive(false, async (a) => recordedSizes(a));
    expect(recorded).toEqual(after);

    const again = await prune(KEEP_LAST_DAY);
    expect(again.report.dropped).toBe(0);
    expect(again.heads).toBe(0);
    expect(again.report.bytesBefore).toBe(total(after));
  }, 120_000);

  it('brings a catalog older than the bucket up to date at open: still no update size asked', async () => {
    // Another machine prunes the bucket; this one's catalog still names the replaced updates.
    const mine = await withArchive(false, async (a) => recordedSizes(a));
    useMachine('machine-b');
    const theirs = await prune({ ...KEEP_LAST_DAY, keepWithinMs: 12 * HOUR });
    expect(theirs.report.dropped).toBeGreaterThan(0);
    useMachine('machine-a');
    const truth = await storeSizes();
    const unknown = [...truth.keys()].filter((name) => !mine.has(name));
    expect(unknown.length).toBeGreaterThan(0);

    // The open indexed the live updates (their sizes come with their reading).
    const stale = await prune(KEEP_ALL, true);
    expect(stale.report.bytesBefore).toBe(total(truth));
    expect(stale.heads).toBe(0);
    const idle = await prune(KEEP_ALL);
    expect(idle.report.bytesBefore).toBe(total(truth));
    expect(idle.heads).toBe(0);
    expect(await withArchive(false, async (a) => recordedSizes(a))).toEqual(truth);
  }, 120_000);
});
