// Threads and big shared buffers kept between operations (block-worker-client.ts,
// shared-memory-pool.ts): what the next operation gets must work as new and never carry the
// last one's bytes into its results. The built modules are used, so that block jobs run on real
// threads (from the TypeScript sources they run inline).
import { createHash, randomFillSync } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/tmp.js';

const ENGINE = path.resolve(import.meta.dirname, '../../out/node/main/engine');
type WorkerClient = typeof import('../../src/main/engine/block-worker-client.js');
type Pool = typeof import('../../src/main/engine/shared-memory-pool.js');
type Encrypted = typeof import('../../src/main/engine/encryption/encrypted-store.js');
type Folder = typeof import('../../src/main/engine/storage/folder-store.js');

const load = async <T>(file: string): Promise<T> => (await import(path.join(ENGINE, file))) as T;
const { BlockWorker } = await load<WorkerClient>('block-worker-client.js');
const pool = await load<Pool>('shared-memory-pool.js');
const { EncryptedStore } = await load<Encrypted>('encryption/encrypted-store.js');
const { FolderStore } = await load<Folder>('storage/folder-store.js');

const threadOf = (w: InstanceType<typeof BlockWorker>): number =>
  (w as unknown as { worker: { threadId: number } | null }).worker?.threadId ?? -1;

async function sha256On(w: InstanceType<typeof BlockWorker>, data: Buffer): Promise<string> {
  const input = new SharedArrayBuffer(data.length);
  Buffer.from(input).set(data);
  const digest = new SharedArrayBuffer(32);
  await w.run({ op: 'sha256', input, length: data.length, digest });
  return Buffer.from(digest).toString('hex');
}

afterEach(() => pool.dropKeptMemory());

describe('block worker threads', () => {
  it('a closed worker’s thread serves the next one, with right results', async () => {
    const data = randomFillSync(Buffer.alloc(1 << 20));
    const want = createHash('sha256').update(data).digest('hex');
    const first = new BlockWorker();
    expect(await sha256On(first, data)).toBe(want);
    const thread = threadOf(first);
    expect(thread).toBeGreaterThan(0);
    await first.close();

    const second = new BlockWorker();
    second.start();
    expect(threadOf(second)).toBe(thread);
    expect(await sha256On(second, data)).toBe(want);
    await second.close();
  });

  it('a worker closed with a job running is ended, not kept', async () => {
    const busy = new BlockWorker();
    const big = randomFillSync(Buffer.alloc(64 << 20));
    void sha256On(busy, big);
    const thread = threadOf(busy);
    await busy.close();
    const next = new BlockWorker();
    next.start();
    expect(threadOf(next)).not.toBe(thread);
    const data = randomFillSync(Buffer.alloc(4096));
    expect(await sha256On(next, data)).toBe(createHash('sha256').update(data).digest('hex'));
    await next.close();
  });
});

describe('shared memory kept between operations', () => {
  it('gives a kept buffer of the same size back, and keeps no more than its bound', () => {
    const a = pool.takeSharedMemory(8 << 20);
    expect(a.byteLength).toBe(8 << 20);
    pool.keepSharedMemory(a);
    expect(pool.keptMemoryBytes()).toBe(8 << 20);
    expect(pool.takeSharedMemory(8 << 20)).toBe(a);
    expect(pool.keptMemoryBytes()).toBe(0);
    // Rounded to 64 KiB pages: a request of another size gets a new one.
    expect(pool.takeSharedMemory(100).byteLength).toBe(64 * 1024);

    const many = Array.from({ length: 30 }, () => pool.takeSharedMemory(8 << 20));
    pool.keepSharedMemory(...many);
    expect(pool.keptMemoryBytes()).toBe(160 << 20);
    pool.dropKeptMemory();
    expect(pool.keptMemoryBytes()).toBe(0);
  });

  it('encrypted objects written one after another in reused buffers read back exactly', async () => {
    const dir = tempDir();
    const key = randomFillSync(Buffer.alloc(32));
    const sizes = [5 << 20, (3 << 20) + 12345, 7, 0, (2 << 20) + 1];
    const written: Buffer[] = [];
    for (const [i, size] of sizes.entries()) {
      // A new store each time, as each interval opens its archive anew.
      const store = new EncryptedStore(new FolderStore(dir), key, 64 * 1024);
      const data = randomFillSync(Buffer.alloc(size));
      const w = await store.create(`obj-${i}`);
      for (let at = 0; at < size; at += 1 << 20) await w.write(data.subarray(at, at + (1 << 20)));
      await w.commit();
      await store.close();
      written.push(data);
      if (i === 0) expect(pool.keptMemoryBytes()).toBeGreaterThan(0);
    }
    const store = new EncryptedStore(new FolderStore(dir), key, 64 * 1024);
    for (const [i, data] of written.entries()) {
      const back = await store.read(`obj-${i}`, 0, data.length);
      expect(back.equals(data)).toBe(true);
    }
    await store.close();
    expect(fs.readdirSync(dir).length).toBe(sizes.length);
  });
});
