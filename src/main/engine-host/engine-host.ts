// The main thread's side of the engine worker: typed calls with progress and cancellation, and
// a worker that is started again after it dies (the calls it was running fail with
// 'engine.crashed'; the archive format makes an interrupted operation simply not have occurred).
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { TidemarkError, type ErrorInfo } from '../../shared/errors.js';
import { LOCK_NAME } from '../engine/archive.js';
import type {
  EngineMethod,
  EngineMethods,
  FromWorker,
  ToWorker,
  WorkerData,
} from './rpc-protocol.js';

export interface CallOptions {
  onProgress?: (done: number, total: number) => void;
  onLog?: (level: 'info' | 'warn', message: string) => void;
  signal?: AbortSignal;
}

export interface EngineHostOptions {
  /** The compiled worker script; by default the engine-worker.js beside this module. */
  workerUrl?: URL;
  /** Lets tests make the worker crash on demand. */
  allowCrash?: boolean;
  /** How long a cancelled call may take to stop before its worker is terminated. */
  cancelGraceMs?: number;
}

interface Pending {
  method: EngineMethod;
  /** The archive the call works on, whose lock a dead worker may leave behind. */
  archive: string;
  resolve: (value: unknown) => void;
  reject: (error: TidemarkError) => void;
  options: CallOptions;
  cancelled: boolean;
}

// Not `new URL('./engine-worker.js', import.meta.url)`: bundlers rewrite that pattern into an
// asset, and electron-vite emits the worker as its own entry beside the main bundle.
const DEFAULT_WORKER_URL = pathToFileURL(
  path.join(path.dirname(fileURLToPath(import.meta.url)), 'engine-worker.js'),
);

export class EngineHost {
  private worker: Worker | null = null;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly options: Required<Omit<EngineHostOptions, 'workerUrl'>> & { workerUrl: URL };
  private closed = false;
  /**
   * Set while a dead worker's locks are being removed: new calls wait for it, or they would
   * find the dead lock (which names our pid, so looks alive) or have their own lock removed.
   */
  private recovering: Promise<void> | null = null;
  /** How many workers have been started (1 + restarts), for logs and tests. */
  starts = 0;

  constructor(options: EngineHostOptions = {}) {
    this.options = {
      workerUrl: options.workerUrl ?? DEFAULT_WORKER_URL,
      allowCrash: options.allowCrash ?? false,
      cancelGraceMs: options.cancelGraceMs ?? 10_000,
    };
  }

  call<M extends EngineMethod>(
    method: M,
    params: EngineMethods[M]['params'],
    options: CallOptions = {},
  ): Promise<EngineMethods[M]['result']> {
    if (this.closed) return Promise.reject(new TidemarkError('internal', 'the engine is closed'));
    if (options.signal?.aborted) return Promise.reject(cancelledError());
    const worker = this.ensureWorker();
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const pending: Pending = {
        method,
        archive: (params as { archive: string }).archive,
        resolve: resolve as (value: unknown) => void,
        reject,
        options,
        cancelled: false,
      };
      this.pending.set(id, pending);
      // A call in flight keeps the process alive; an idle engine does not. Always: the calls
      // of a crashed worker may still be pending here while this one goes to its successor.
      worker.ref();
      options.signal?.addEventListener('abort', () => this.cancel(id), { once: true });
      const send = (): void => {
        // Held during a crash cleanup: meanwhile closed, or cancelled before it started.
        if (!this.pending.has(id)) return;
        if (pending.cancelled) {
          this.settle(id);
          reject(cancelledError());
          return;
        }
        this.post(worker, { kind: 'call', id, method, params });
      };
      if (this.recovering) void this.recovering.then(send);
      else send();
    });
  }

  /** Makes the worker crash (only with `allowCrash`): tests of the restart use it. */
  crashForTest(): void {
    if (this.worker) this.post(this.worker, { kind: 'crash' });
  }

  async close(): Promise<void> {
    this.closed = true;
    const worker = this.worker;
    this.worker = null;
    this.failAll(() => new TidemarkError('internal', 'the engine was closed'));
    await worker?.terminate();
  }

  private cancel(id: number): void {
    const pending = this.pending.get(id);
    if (!pending || pending.cancelled || !this.worker) return;
    pending.cancelled = true;
    this.post(this.worker, { kind: 'cancel', id });
    const worker = this.worker;
    // A call that never reports progress cannot see the flag: stop its thread instead.
    setTimeout(() => {
      if (this.pending.has(id) && this.worker === worker) void worker.terminate();
    }, this.options.cancelGraceMs).unref();
  }

  private ensureWorker(): Worker {
    if (this.worker) return this.worker;
    const data: WorkerData = { allowCrash: this.options.allowCrash };
    const worker = new Worker(this.options.workerUrl, { workerData: data });
    this.starts++;
    worker.on('message', (message: FromWorker) => this.receive(message));
    worker.on('error', (err) => this.lost(worker, err.message));
    worker.on('exit', (code) => this.lost(worker, `the engine stopped (exit code ${code})`));
    // An idle engine must not keep a CLI process alive.
    worker.unref();
    this.worker = worker;
    return worker;
  }

  private post(worker: Worker, message: ToWorker): void {
    worker.postMessage(message);
  }

  private receive(message: FromWorker): void {
    if (message.kind === 'log') {
      const pending = message.id === null ? undefined : this.pending.get(message.id);
      pending?.options.onLog?.(message.level, message.message);
      return;
    }
    const pending = this.pending.get(message.id);
    if (!pending) return;
    switch (message.kind) {
      case 'progress':
        pending.options.onProgress?.(message.done, message.total);
        break;
      case 'result':
        this.settle(message.id);
        pending.resolve(message.value);
        break;
      case 'error':
        this.settle(message.id);
        pending.reject(fromInfo(message.error));
        break;
    }
  }

  private settle(id: number): void {
    this.pending.delete(id);
    if (this.pending.size === 0) this.worker?.unref();
  }

  /** The worker died: fail what it was doing; the next call starts a new one. */
  private lost(worker: Worker, why: string): void {
    if (this.worker !== worker) return;
    this.worker = null;
    // Only the calls the dead worker had: a call made during the cleanup below goes to a new
    // worker and must not be failed with them.
    const dead = [...this.pending];
    const archives = [...new Set(dead.map(([, p]) => p.archive))];
    // The calls fail only once their locks are gone, so that a retry finds the archive free.
    // After any earlier cleanup still running (a worker that died right after its start).
    const previous = this.recovering ?? Promise.resolve();
    const recovering: Promise<void> = previous
      .then(() => releaseDeadLocks(archives))
      .finally(() => {
        if (this.recovering === recovering) this.recovering = null;
        for (const [id, p] of dead) {
          if (!this.pending.has(id)) continue;
          this.settle(id);
          p.reject(
            p.cancelled
              ? cancelledError()
              : new TidemarkError(
                  'engine.crashed',
                  `the engine stopped during ${p.method}: ${why}`,
                  {
                    retryable: true,
                  },
                ),
          );
        }
      });
    this.recovering = recovering;
  }

  private failAll(error: (p: Pending) => TidemarkError): void {
    const all = [...this.pending.values()];
    this.pending.clear();
    for (const p of all) p.reject(error(p));
  }
}

/**
 * The archive lock names the holding process, and a worker thread shares its pid with us: a
 * worker that died holding a lock leaves one that looks alive. Only this process's engine worker
 * takes locks in this process, so a lock naming our pid is the dead worker's.
 */
async function releaseDeadLocks(archives: string[]): Promise<void> {
  for (const archive of archives) {
    const file = path.join(archive, LOCK_NAME);
    try {
      const holder = JSON.parse(await fsp.readFile(file, 'utf8')) as {
        pid?: number;
        host?: string;
      };
      if (holder.pid === process.pid && holder.host === os.hostname()) await fsp.rm(file);
    } catch {
      // No lock, or not ours to judge: the next open decides.
    }
  }
}

function cancelledError(): TidemarkError {
  return new TidemarkError('job.cancelled', 'cancelled');
}

function fromInfo(info: ErrorInfo): TidemarkError {
  return new TidemarkError(info.code, info.message, { retryable: info.retryable });
}
