import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

const BTRFS_SUPER_MAGIC = 0x9123683e;
/** Every btrfs subvolume's root folder has this inode number. */
const SUBVOLUME_ROOT_INO = 256;

/** A read-only btrfs snapshot a point reads from, and where the tree lies inside it. */
export interface TreeSnapshot {
  snapshotDir: string;
  /** The tree's folder inside the snapshot. */
  readRoot: string;
  release(): void;
}

/** The btrfs subvolume holding `dir`, or undefined when `dir` is not on btrfs. */
export function btrfsSubvolumeOf(dir: string): string | undefined {
  try {
    if (fs.statfsSync(dir).type !== BTRFS_SUPER_MAGIC) return undefined;
  } catch {
    return undefined;
  }
  let at = dir;
  const dev = fs.statSync(dir).dev;
  for (;;) {
    const st = fs.statSync(at);
    if (st.ino === SUBVOLUME_ROOT_INO && st.dev === dev) return at;
    const up = path.dirname(at);
    if (up === at || fs.statSync(up).dev !== dev) return at;
    at = up;
  }
}

/**
 * Takes a read-only snapshot of the subvolume holding `tree` (`btrfs subvolume snapshot -r`):
 * every file in it is frozen at one instant, so a point read from it is consistent whatever is
 * written meanwhile. It lives beside the subvolume's root as `.tidemark-snapshot-<id>` (excluded
 * from every tree); one left by a crash is deleted first. Returns undefined when the tree is
 * not on btrfs; throws when it is but the snapshot cannot be made.
 */
export function snapshotTree(tree: string, id: string): TreeSnapshot | undefined {
  const subvolume = btrfsSubvolumeOf(tree);
  if (!subvolume) return undefined;
  const snapshotDir = path.join(subvolume, `.tidemark-snapshot-${id}`);
  if (fs.existsSync(snapshotDir)) deleteSnapshot(snapshotDir);
  execFileSync('btrfs', ['subvolume', 'snapshot', '-r', subvolume, snapshotDir], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  return {
    snapshotDir,
    readRoot: path.join(snapshotDir, path.relative(subvolume, tree)),
    release: () => deleteSnapshot(snapshotDir),
  };
}

function deleteSnapshot(dir: string): void {
  execFileSync('btrfs', ['subvolume', 'delete', dir], { stdio: ['ignore', 'ignore', 'pipe'] });
}
