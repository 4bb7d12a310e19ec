import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import watcher from '@parcel/watcher';
import { BARRIER_BACKEND, DeliveryBarrier } from './delivery-barrier.js';
import type { Excludes } from './excludes.js';
import type { Arrivals, LiveChanges } from './capture-volume.js';
import type { PathJournal } from './path-journal.js';
import { suspectsOf } from './path-journal.js';
import type { Suspects } from './tree-scanner.js';

/**
 * @parcel/watcher (Debounce.cc) delivers what it holds after 50 ms without a new event, and at
 * once when 500 ms have passed since its last delivery. So a change made before a round began
 * has arrived 50 ms after that beginning (150 ms: threads of a busy machine wait for a core),
 * unless writes went on without a pause: then by its next delivery, at most 500 ms (plus the
 * same margin) after the one before the round. The first delivery after the round began brings
 * all it held.
 */
const SETTLE_MS = 150;
const BATCH_MS = 500;
const MARGIN_MS = 100;

/**
 * The native watcher feeding the journal: every changed path (outside the excludes) is noted
 * there as it arrives, and during a point the paths that arrive are also what the next round
 * of the point reads again. A watcher error (an overflowed kernel queue) sets `lost`, which makes
 * the next point a full rescan.
 */
export class TreeWatcher implements LiveChanges {
  private subscription: watcher.AsyncSubscription | null = null;
  private barrier: DeliveryBarrier | null = null;
  /** The barrier pass begun with the current round: its end proves the round's events arrived. */
  private pass: Promise<void> | null = null;
  /** What arrived since the last `roundStart` (counted always, so no event falls between rounds). */
  private arrived = new Set<string>();
  private arrivedFolders = new Set<string>();
  private roundBegan = 0;
  /** When events last came to this thread (performance.now()). */
  private lastDelivery = -Infinity;
  private delivered: (() => void) | null = null;
  /** Ends the timers' current pause early (the barrier won). */
  private interrupt: (() => void) | null = null;
  lost = false;
  /** Rounds whose wait the delivery barrier ended before the timers (for tests and traces). */
  roundsEndedByBarrier = 0;

  private constructor(
    private readonly root: string,
    private readonly excludes: Excludes,
    private readonly journal: PathJournal,
  ) {}

  static async start(
    root: string,
    excludes: Excludes,
    journal: PathJournal,
    ignore: string[],
  ): Promise<TreeWatcher> {
    const w = new TreeWatcher(root, excludes, journal);
    w.subscription = await watcher.subscribe(
      root,
      (err, events) => {
        if (err) {
          w.lost = true;
          return;
        }
        if (events.length === 0) return;
        w.lastDelivery = performance.now();
        for (const ev of events) w.noteAbsolute(ev.path);
        w.delivered?.();
      },
      BARRIER_BACKEND ? { ignore, backend: BARRIER_BACKEND } : { ignore },
    );
    w.barrier = await DeliveryBarrier.start();
    return w;
  }

  private noteAbsolute(abs: string): void {
    const rel = path.relative(this.root, abs).split(path.sep).join('/');
    if (rel === '' || rel.startsWith('..')) return;
    const key = Buffer.from(rel, 'utf8').toString('latin1');
    if (this.excludedAnyLevel(key)) return;
    this.journal.note(key);
    this.arrived.add(key);
    if (rel.includes('\uFFFD')) {
      // The watcher gives names as UTF-8 strings, so a name that is not UTF-8 comes out mangled:
      // its folder is listed again, which finds it under its real bytes.
      const folder = key.includes('/') ? key.slice(0, key.lastIndexOf('/')) : '';
      this.journal.noteFolder(folder);
      this.arrivedFolders.add(folder);
    }
  }

  private excludedAnyLevel(rel: string): boolean {
    const parts = rel.split('/');
    for (let i = 1; i <= parts.length; i++)
      if (this.excludes.excludes(parts.slice(0, i).join('/'))) return true;
    return false;
  }

  /** Counts anew from here, dropping what arrived before (the journal holds it). */
  restartCount(): void {
    this.arrived = new Set();
    this.arrivedFolders = new Set();
  }

  roundStart(): Suspects {
    const before = suspectsOf(this.arrived, this.arrivedFolders);
    this.restartCount();
    this.roundBegan = performance.now();
    this.pass = this.barrier?.pass() ?? null;
    return before;
  }

  async roundEnd(): Promise<Arrivals> {
    // Whichever proves first that the changes made before the round began have arrived: the
    // barrier, or waiting out the watcher's timers (where there is no barrier, or it fails).
    const race = { over: false };
    const timers = this.waitOutTimers(race).then(() => false);
    const pass = this.pass?.then(() => true);
    this.pass = null;
    if (await Promise.race(pass ? [pass, timers] : [timers])) this.roundsEndedByBarrier++;
    race.over = true;
    this.interrupt?.();
    // Callbacks the watcher queued while this thread was busy are taken in a poll phase; two
    // turns of the loop make sure one ran, or events delivered within the wait would be missed.
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    return { paths: new Set(this.arrived), folders: new Set(this.arrivedFolders) };
  }

  private async waitOutTimers(race: { over: boolean }): Promise<void> {
    // The wait runs from the round's beginning, not its end: a round that read for longer than
    // SETTLE_MS has nothing left to wait for (the reads' own changes are proven by their stats).
    const left = this.roundBegan + SETTLE_MS - performance.now();
    if (left > 0) await this.pause(left, false);
    // Events came shortly before the round: the watcher may be holding more of a run of writes
    // until its next delivery, BATCH_MS after that one at the latest. A delivery taken within
    // MARGIN_MS of the round's start may have left the watcher before it; a later one brings
    // everything from before the round.
    while (!race.over) {
      const last = this.lastDelivery;
      const batchEnd = last + BATCH_MS + MARGIN_MS;
      if (last > this.roundBegan + MARGIN_MS || performance.now() >= batchEnd) break;
      await this.pause(batchEnd - performance.now(), true);
    }
  }

  /** Sleeps `ms`, or less: until a delivery (if asked) or until the round's wait is over. */
  private pause(ms: number, untilDelivery: boolean): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        if (this.delivered === done) this.delivered = null;
        if (this.interrupt === done) this.interrupt = null;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.interrupt = done;
      if (untilDelivery) this.delivered = done;
    });
  }

  async stop(): Promise<void> {
    await this.subscription?.unsubscribe();
    this.subscription = null;
    await this.barrier?.stop();
    this.barrier = null;
  }
}
