import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import watcher from '@parcel/watcher';
import type { Excludes } from './excludes.js';
import type { Arrivals, LiveChanges } from './capture-volume.js';
import type { PathJournal } from './path-journal.js';
import { suspectsOf } from './path-journal.js';
import type { Suspects } from './tree-scanner.js';

/**
 * @parcel/watcher delivers events after 50 ms of quiet, or every 500 ms while writes go on: a
 * change made before a round began is believed to have arrived this long after that beginning.
 */
const SETTLE_MS = 150;

/**
 * The native watcher feeding the journal: every changed path (outside the excludes) is noted
 * there as it arrives, and during a point the paths that arrive are also what the next round
 * of the point reads again. A watcher error (an overflowed kernel queue) sets `lost`, which makes
 * the next point a full rescan.
 */
export class TreeWatcher implements LiveChanges {
  private subscription: watcher.AsyncSubscription | null = null;
  /** What arrived since the last `roundStart` (counted always, so no event falls between rounds). */
  private arrived = new Set<string>();
  private arrivedFolders = new Set<string>();
  private roundBegan = 0;
  lost = false;

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
        for (const ev of events) w.noteAbsolute(ev.path);
      },
      { ignore },
    );
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

  roundStart(): Suspects {
    const before = suspectsOf(this.arrived, this.arrivedFolders);
    this.arrived = new Set();
    this.arrivedFolders = new Set();
    this.roundBegan = performance.now();
    return before;
  }

  async roundEnd(): Promise<Arrivals> {
    // The wait runs from the round's beginning, not its end: a round that read for longer than
    // SETTLE_MS has nothing left to wait for (the reads' own changes are proven by their stats).
    const left = this.roundBegan + SETTLE_MS - performance.now();
    if (left > 0) await new Promise((r) => setTimeout(r, left));
    // Callbacks the watcher queued while this thread was busy are taken in a poll phase; two
    // turns of the loop make sure one ran, or events delivered within the wait would be missed.
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    return { paths: new Set(this.arrived), folders: new Set(this.arrivedFolders) };
  }

  async stop(): Promise<void> {
    await this.subscription?.unsubscribe();
    this.subscription = null;
  }
}
