import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomFillSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { EncryptedStore } from '../../src/main/engine/encryption/encrypted-store.js';
import { FolderStore } from '../../src/main/engine/storage/folder-store.js';
import { tempDir } from '../helpers/tmp.js';

const CHUNK = 4096;
/** Plaintext per sealing batch at this chunk size (encrypted-store.ts: 2 MiB of whole chunks). */
const BATCH = 2 << 20;

async function roundTrip(size: number, writeSize: number): Promise<void> {
  const dir = tempDir();
  const store = new EncryptedStore(new FolderStore(dir), randomFillSync(Buffer.alloc(32)), CHUNK);
  const data = randomFillSync(Buffer.alloc(size));
  const w = await store.create('obj');
  // One reused source buffer, overwritten after every write: the writer must have copied it.
  const source = Buffer.alloc(writeSize);
  for (let at = 0; at < size; at += writeSize) {
    const n = Math.min(writeSize, size - at);
    data.copy(source, 0, at, at + n);
    await w.write(source.subarray(0, n));
    source.fill(0xa5);
  }
  expect(w.length).toBe(size);
  await w.commit();
  const chunks = Math.max(1, Math.ceil(size / CHUNK));
  expect(fs.statSync(path.join(dir, 'obj')).size).toBe(16 + size + 16 * chunks);
  expect(await store.size('obj')).toBe(size);
  if (size > 0) expect((await store.read('obj', 0, size)).equals(data)).toBe(true);
  if (size > 10)
    expect((await store.read('obj', 5, size - 10)).equals(data.subarray(5, -5))).toBe(true);
  await store.close();
}

describe('encrypted store: batched sealing', () => {
  it('round-trips objects at every chunk and batch boundary, whatever the write sizes', async () => {
    const sizes = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, BATCH - 1, BATCH, BATCH + 1, 2 * BATCH];
    for (const size of [...sizes, 2 * BATCH + 3 * CHUNK + 7])
      for (const writeSize of [size < BATCH ? 1000 : 3 * CHUNK + 5, 3 << 20])
        await roundTrip(size, writeSize);
  });

  it('a chunk moved to another place in the object fails authentication', async () => {
    const dir = tempDir();
    const key = randomFillSync(Buffer.alloc(32));
    const store = new EncryptedStore(new FolderStore(dir), key, CHUNK);
    const w = await store.create('obj');
    await w.write(randomFillSync(Buffer.alloc(BATCH + CHUNK)));
    await w.commit();
    await store.close();
    // Swap the first chunk of the second batch with the first chunk of the object.
    const file = path.join(dir, 'obj');
    const bytes = fs.readFileSync(file);
    const sealed = CHUNK + 16;
    const a = 16;
    const b = 16 + (BATCH / CHUNK) * sealed;
    const first = Buffer.from(bytes.subarray(a, a + sealed));
    bytes.copy(bytes, a, b, b + sealed);
    first.copy(bytes, b);
    fs.writeFileSync(file, bytes);
    const again = new EncryptedStore(new FolderStore(dir), key, CHUNK);
    // An untouched chunk still reads; the moved ones name the object.
    expect((await again.read('obj', CHUNK, CHUNK)).length).toBe(CHUNK);
    await expect(again.read('obj', 0, 10)).rejects.toThrow(/obj: damaged or tampered with/);
    await again.close();
  });
});
