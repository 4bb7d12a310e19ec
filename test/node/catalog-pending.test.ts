import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { Catalog, type NewBlob, type StateRow } from '../../src/main/engine/catalog.js';
import { tempDir } from '../helpers/tmp.js';

// A device snapshot adds its update's rows to the catalog while it scans, in a transaction that
// commits only once the update is durable (Catalog.beginState). Rows of an update that never
// committed must never be found: a later snapshot would refer to blocks that are not stored.

const BUILT_CATALOG = path.resolve(import.meta.dirname, '../../out/node/main/engine/catalog.js');

function blobs(seed: string, count: number): NewBlob[] {
  return Array.from({ length: count }, (_, i) => ({
    hash: createHash('sha256').update(`${seed}-${i}`).digest(),
    offset: 64 + i * 100,
    storedLength: 100,
    rawLength: 16384,
    codec: 1,
  }));
}

function stateRow(id: number): StateRow {
  return {
    id,
    parent: id === 0 ? null : id - 1,
    time: new Date(1_700_000_000_000 + id).toISOString(),
    timeMs: 1_700_000_000_000 + id,
    update: `updates/${String(id).padStart(10, '0')}.tmu`,
    changedBlocks: 1,
    storedBytes: 1,
    stateHash: 'ab'.repeat(32),
    consistency: 'quiescent',
  };
}

describe('a pending state in the catalog', () => {
  it('keeps its rows only if it commits', () => {
    const file = path.join(tempDir(), 'catalog.sqlite');
    const catalog = Catalog.open(file);
    catalog.recordState(stateRow(0), blobs('base', 10));

    const dropped = blobs('dropped', 300);
    const pending = catalog.beginState();
    pending.addBlobs(stateRow(1).update, dropped);
    // The scan's own lookups see what it added.
    expect(catalog.findBlobs(dropped.map((b) => b.hash)).size).toBe(300);
    pending.rollback();
    pending.rollback();
    expect(catalog.findBlobs(dropped.map((b) => b.hash)).size).toBe(0);
    expect(catalog.latestState()?.id).toBe(0);

    const early = blobs('early', 200);
    const late = blobs('late', 50);
    const kept = catalog.beginState();
    kept.addBlobs(stateRow(1).update, early);
    kept.commit(stateRow(1), late);
    kept.rollback();
    catalog.close();

    const reopened = Catalog.open(file);
    expect(reopened.latestState()?.id).toBe(1);
    const found = reopened.findBlobs([...early, ...late].map((b) => b.hash));
    expect(found.size).toBe(250);
    expect([...found.values()].every((l) => l.update === stateRow(1).update)).toBe(true);
    expect(reopened.findBlobs(dropped.map((b) => b.hash)).size).toBe(0);
    reopened.close();
  });

  it('leaves nothing behind when its process is killed before the commit', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'catalog.sqlite');
    const first = Catalog.open(file);
    first.recordState(stateRow(0), blobs('base', 10));
    first.close();

    // The built catalog, as the CLI runs it: enough rows that SQLite works its journal, then a
    // SIGKILL from outside while the transaction is open.
    const child = path.join(dir, 'pending.mjs');
    fs.writeFileSync(
      child,
      `import { createHash } from 'node:crypto';
const { Catalog } = await import(${JSON.stringify(pathToFileURL(BUILT_CATALOG).href)});
const catalog = Catalog.open(${JSON.stringify(file)});
const pending = catalog.beginState();
const rows = Array.from({ length: 20000 }, (_, i) => ({
  hash: createHash('sha256').update('killed-' + i).digest(),
  offset: 64 + i * 100, storedLength: 100, rawLength: 16384, codec: 1,
}));
pending.addBlobs('updates/0000000001.tmu', rows);
process.stdout.write('added\\n');
setInterval(() => undefined, 1000);
`,
    );
    const proc = spawn(process.execPath, [child], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve, reject) => {
      proc.stdout.on('data', (d: Buffer) => {
        if (d.toString().includes('added')) resolve();
      });
      proc.on('error', reject);
      proc.on('exit', (code) => reject(new Error(`child ended first (${code})`)));
    });
    const exited = new Promise((resolve) => proc.on('exit', (_code, signal) => resolve(signal)));
    proc.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');

    const catalog = Catalog.open(file);
    expect(catalog.latestState()?.id).toBe(0);
    const killed = blobs('killed', 20000).map((b) => b.hash);
    expect(catalog.findBlobs(killed).size).toBe(0);
    expect(catalog.findBlobs(blobs('base', 10).map((b) => b.hash)).size).toBe(10);
    // The next writer goes on as if the killed one had never started.
    const next = catalog.beginState();
    next.addBlobs(stateRow(1).update, blobs('next', 5));
    next.commit(stateRow(1), []);
    expect(catalog.latestState()?.id).toBe(1);
    catalog.close();
  });
});
