import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { TidemarkError } from '../../shared/errors.js';
import { runBlockJob, type BlockJob } from './block-work.js';

// Beside this module, both as compiled by tsc (out/node/main/engine/) and as bundled by
// electron-vite (out/main/, where the engine worker and this worker are entries side by side).
const WORKER_FILE = path.join(path.dirname(fileURLToPath(import.meta.url)), 'block-worker.js');

/**
 * Runs block jobs on their own thread, one at a time in the order given. Where the compiled
 * worker script is missing (the engine run from its TypeScript sources, as unit tests do) a job
 * runs inline instead, with the same results. The worker starts with the first job.
 */
export class BlockWorker {
  private worker: Worker | null = null;
  private nextId = 1;
  private failure: Error | null = null;
  /** Decided once: a stat per job would sit on the scan's and the restore's hot path. */
  private readonly inline = !fs.existsSync(WORKER_FILE);
  private readonly pending = new Map<
    number,
    { resolve: () => void; reject: (err: Error) => void }
  >();

  run(job: BlockJob): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.inline) {
      try {
        runBlockJob(job);
        return Promise.resolve();
      } catch (err) {
        return Promise.reject(err as Error);
      }
    }
    const worker = (this.worker ??= this.start());
    const id = this.nextId++;
    // Referenced while a job runs: a caller awaiting only this worker (an upload's last part
    // being hashed) must not see the process exit under it.
    if (this.pending.size === 0) worker.ref();
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      worker.postMessage({ id, job });
    });
  }

  async close(): Promise<void> {
    const worker = this.worker;
    this.worker = null;
    if (!worker) return;
    // A worker's termination does not keep Node running, even referenced (tried): without this
    // timer the process ended, exit code 0, while the caller still awaited it (a restore that
    // met a damaged block said nothing at all).
    const keepAlive = setInterval(() => undefined, 60_000);
    try {
      await worker.terminate();
    } finally {
      clearInterval(keepAlive);
    }
  }

  private start(): Worker {
    const worker = new Worker(WORKER_FILE);
    // An operation that ends (or fails) without close() must not keep the process alive: the
    // worker is referenced only while a job runs.
    worker.unref();
    worker.on('message', ({ id, error }: { id: number; error?: string }) => {
      const p = this.pending.get(id);
      this.pending.delete(id);
      if (this.pending.size === 0) worker.unref();
      if (error) p?.reject(new TidemarkError('internal', `block worker: ${error}`));
      else p?.resolve();
    });
    const fail = (err: Error): void => {
      this.failure = new TidemarkError('internal', `the block worker failed: ${err.message}`);
      for (const p of this.pending.values()) p.reject(this.failure);
      this.pending.clear();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => {
      if (this.worker === worker) fail(new Error(`it exited with code ${code}`));
    });
    return worker;
  }
}
