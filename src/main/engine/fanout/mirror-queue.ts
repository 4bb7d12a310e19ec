import { createHash } from 'node:crypto';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { FolderStore, makeDirs } from '../storage/folder-store.js';
import { writeAtomic } from '../cache/cache-entry.js';
import { partitionUpdates, stateIdOf, UPDATE_PREFIX } from '../update-names.js';

/** A state as the queue remembers it of its secondary (enough for `states` while it is away). */
export interface KnownState {
  id: number;
  time: string;
  stateHash: string;
}

/** What the queue remembers of its secondary, as of the last time it was reached. */
export interface MirrorView {
  target: string;
  archiveId: string;
  encrypted: boolean;
  /** Every state on the secondary then, oldest first. */
  states: KnownState[];
  /** When it was last reached (ISO time), and the last reason it could not be used. */
  lastContact?: string;
  lastError?: string;
}

const VIEW_NAME = 'secondary.json';

function keyOf(name: string): string {
  return createHash('sha256').update(name).digest('hex').slice(0, 16);
}

/**
 * The queue of one extra secondary of one archive, in the local cache folder:
 * `<cache-dir>/<archive key>.secondaries/<secondary key>/` holds copies (plaintext, like the rest
 * of the local cache) of the updates that secondary has not received yet, named as in the
 * archive, and `secondary.json`, its view. Each secondary has its own queue, so a copy leaves the
 * cache only when the secondary it waits for has it; the main cache entry is independent.
 */
export class MirrorQueue {
  private constructor(
    readonly dir: string,
    readonly target: string,
  ) {}

  static of(cacheDir: string, archive: string, target: string): MirrorQueue {
    return new MirrorQueue(
      path.join(path.resolve(cacheDir), `${keyOf(archive)}.secondaries`, keyOf(target)),
      target,
    );
  }

  async ensure(): Promise<void> {
    await makeDirs(path.join(this.dir, UPDATE_PREFIX));
  }

  store(): FolderStore {
    return new FolderStore(this.dir);
  }

  /** Queued updates, oldest first. */
  async updates(): Promise<Array<{ id: number; name: string }>> {
    const store = this.store();
    try {
      const names = await store.list(UPDATE_PREFIX).catch(() => [] as string[]);
      return partitionUpdates(names).live.map((name) => ({ id: stateIdOf(name) as number, name }));
    } finally {
      await store.close();
    }
  }

  /** Bytes the queued updates take. */
  async bytes(): Promise<number> {
    let total = 0;
    for (const { name } of await this.updates())
      total += (await fsp.stat(path.join(this.dir, name)).catch(() => ({ size: 0 }))).size;
    return total;
  }

  async readView(): Promise<MirrorView | undefined> {
    try {
      return JSON.parse(await fsp.readFile(path.join(this.dir, VIEW_NAME), 'utf8')) as MirrorView;
    } catch {
      return undefined;
    }
  }

  async writeView(view: MirrorView): Promise<void> {
    await this.ensure();
    await writeAtomic(path.join(this.dir, VIEW_NAME), JSON.stringify(view));
  }

  /** The newest state the secondary has or will have once its queue is shipped. */
  async knownLatest(): Promise<number | undefined> {
    const queued = (await this.updates()).at(-1)?.id;
    const seen = (await this.readView())?.states.at(-1)?.id;
    if (queued === undefined) return seen;
    return Math.max(queued, seen ?? -1);
  }

  async remove(): Promise<void> {
    await fsp.rm(this.dir, { recursive: true, force: true });
  }
}
