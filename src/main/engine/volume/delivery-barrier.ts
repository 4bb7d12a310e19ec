import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import watcher from '@parcel/watcher';

/**
 * The watcher backend the tree and the barrier share. The proof below holds for inotify only
 * (one kernel queue, read in order); elsewhere there is no barrier and rounds wait out the
 * watcher's timers instead.
 */
export const BARRIER_BACKEND: watcher.BackendType | undefined =
  process.platform === 'linux' ? 'inotify' : undefined;

const PREFIX = 'tidemark-barrier-';

/** After the second marker: time for the delivering thread to queue the callbacks it had left. */
const GRACE_MS = 10;

/**
 * Tells, without waiting out @parcel/watcher's debounce timers, when every tree event the kernel
 * queued before a moment has reached this thread. A private folder is watched through the same
 * backend as the tree: parcel keeps one inotify instance and one delivery thread per process.
 *
 * Marker A is created at the moment. The kernel queues events in order, so the tree's events from
 * before it are taken by A's delivery or the next one (the one after only if a delivery was
 * running while both were read). One delivery calls its watchers in no fixed order, so marker B
 * is created when A has arrived: B is taken by a later delivery than A's, hence no earlier than
 * the tree's; GRACE_MS then lets B's own delivery finish queueing its callbacks.
 */
export class DeliveryBarrier {
  private seq = 0;
  private waiting = new Map<string, () => void>();
  private broken = false;

  private constructor(
    private readonly dir: string,
    private subscription: watcher.AsyncSubscription | null,
  ) {}

  /** Null where there is no barrier (not inotify, no temporary folder, no watch left). */
  static async start(): Promise<DeliveryBarrier | null> {
    if (!BARRIER_BACKEND) return null;
    let dir: string | null = null;
    try {
      removeOrphans();
      dir = fs.mkdtempSync(path.join(os.tmpdir(), `${PREFIX}${process.pid}-`));
      const barrier = new DeliveryBarrier(dir, null);
      barrier.subscription = await watcher.subscribe(
        dir,
        (err, events) => {
          if (err) {
            barrier.broken = true;
            return;
          }
          for (const ev of events) barrier.waiting.get(ev.path)?.();
        },
        { backend: BARRIER_BACKEND },
      );
      return barrier;
    } catch {
      if (dir) fs.rmSync(dir, { recursive: true, force: true });
      return null;
    }
  }

  /**
   * Resolves once every tree event queued before this call has been queued to this thread; the
   * caller lets the loop turn twice to run those callbacks (TreeWatcher.roundEnd does). Never
   * resolves if the watcher fails (callers race it against their timers).
   */
  async pass(): Promise<void> {
    const a = await this.marker();
    const b = await this.marker();
    // Only now: a deletion between the markers would hold B's delivery back.
    for (const file of [a, b]) fs.rmSync(file, { force: true });
    await new Promise((r) => setTimeout(r, GRACE_MS));
  }

  /** Creates a marker file; resolves with its name when its event has arrived. */
  private marker(): Promise<string> {
    if (this.broken) return new Promise(() => undefined);
    const file = path.join(this.dir, String(this.seq++));
    return new Promise<string>((resolve) => {
      this.waiting.set(file, () => {
        this.waiting.delete(file);
        resolve(file);
      });
      try {
        fs.closeSync(fs.openSync(file, 'wx'));
      } catch {
        this.broken = true;
        this.waiting.delete(file);
      }
    });
  }

  async stop(): Promise<void> {
    await this.subscription?.unsubscribe().catch(() => undefined);
    this.subscription = null;
    this.waiting.clear();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Folders left by watchers that were killed: their process is gone. */
function removeOrphans(): void {
  for (const name of fs.readdirSync(os.tmpdir())) {
    const pid = Number(/^tidemark-barrier-(\d+)-/.exec(name)?.[1]);
    if (!pid || pid === process.pid || alive(pid)) continue;
    fs.rmSync(path.join(os.tmpdir(), name), { recursive: true, force: true });
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
