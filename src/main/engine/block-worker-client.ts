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
 * Idle threads kept after their operation closed, for the next one: starting a thread costs a
 * new V8 isolate and the loading of its modules (tens of ms of a core and ~10 MiB of fresh
 * memory each), and an interval used to start three (compression, sealing, upload hashing).
 */
const parked = new Map<Worker, () => void>();
const MAX_PARKED = 4;
/** Parked threads end this long after the last one was parked: an idle app keeps none. */
const PARK_MS = 30_000;
let parkTimer: NodeJS.Timeout | null = null;

/** Keeps `worker`, whose owner removed its own listeners (only those: Node has its own). */
function park(worker: Worker): void {
  if (parked.size >= MAX_PARKED) {
    void worker.terminate();
    return;
  }
  worker.unref();
  // A parked thread that dies (it should not) is simply not reused.
  const forget = (): void => void parked.delete(worker);
  worker.once('exit', forget);
  parked.set(worker, () => worker.off('exit', forget));
  if (parkTimer) clearTimeout(parkTimer);
  parkTimer = setTimeout(() => {
    for (const w of parked.keys()) void w.terminate();
    parked.clear();
  }, PARK_MS);
  parkTimer.unref();
}

function unpark(): Worker | null {
  for (const [worker, detach] of parked) {
    parked.delete(worker);
    detach();
    return worker;
  }
  return null;
}

/**
 * Runs block jobs on their own thread, one at a time in the order given. Where the compiled
 * worker script is missing (the engine run from its TypeScript sources, as unit tests do) a job
 * runs inline instead, with the same results. The worker starts with the first job.
 */
export class BlockWorker {
  private worker: Worker | null = null;
  /** Removes this object's listeners from `worker`, so that the thread can serve another. */
  private detach: () => void = () => undefined;
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
    const worker = this.thread();
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
    if (this.pending.size === 0 && !this.failure) {
      this.detach();
      park(worker);
      return;
    }
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

  /** Starts the thread ahead of the first job (it starts with the first job otherwise). */
  start(): void {
    if (!this.inline) this.thread();
  }

  private thread(): Worker {
    if (this.worker) return this.worker;
    const worker = unpark() ?? new Worker(WORKER_FILE);
    this.worker = worker;
    // An operation that ends (or fails) without close() must not keep the process alive: the
    // worker is referenced only while a job runs.
    worker.unref();
    const onMessage = ({ id, error }: { id: number; error?: string }): void => {
      const p = this.pending.get(id);
      this.pending.delete(id);
      if (this.pending.size === 0) worker.unref();
      if (error) p?.reject(new TidemarkError('internal', `block worker: ${error}`));
      else p?.resolve();
    };
    const fail = (err: Error): void => {
      this.failure = new TidemarkError('internal', `the block worker failed: ${err.message}`);
      for (const p of this.pending.values()) p.reject(this.failure);
      this.pending.clear();
    };
    const onExit = (code: number): void => {
      if (this.worker === worker) fail(new Error(`it exited with code ${code}`));
    };
    worker.on('message', onMessage);
    worker.on('error', fail);
    worker.on('exit', onExit);
    this.detach = () => {
      worker.off('message', onMessage);
      worker.off('error', fail);
      worker.off('exit', onExit);
    };
    return worker;
  }
}
