import * as path from 'node:path';

/**
 * Left out unless the user says otherwise: caches and trash, which change often and are
 * rebuilt or emptied anyway, and the folder a btrfs point is read from.
 */
/** Where a btrfs point's read-only snapshot is made (btrfs-snapshot.ts); always excluded. */
export const SNAPSHOT_EXCLUDE = '.tidemark-snapshot-*';

export const DEFAULT_EXCLUDES = [
  '.cache',
  '.Trash',
  '.Trash-*',
  '.local/share/Trash',
  '.thumbnails',
  'node_modules/.cache',
  '__pycache__',
  '*.swp',
  // SQLite's shared-memory index: rebuilt from the -wal file on open, and never consistent with
  // it when copied while the database is in use.
  '*-shm',
  SNAPSHOT_EXCLUDE,
];

/**
 * Glob patterns over tree paths, gitignore-like: a pattern without '/' matches a name at any
 * depth; one with '/' matches from the root; `*` and `?` stay inside one name, `**` spans
 * folders; a leading '/' anchors a single name to the root. A matching folder is left out with everything in it.
 */
export class Excludes {
  private readonly anywhere: RegExp[] = [];
  private readonly anchored: RegExp[] = [];

  constructor(patterns: string[]) {
    for (const raw of patterns) {
      const p = raw.replace(/^\/+|\/+$/g, '');
      if (p === '') continue;
      const re = new RegExp(`^${globToRegex(p)}$`);
      (raw.startsWith('/') || p.includes('/') ? this.anchored : this.anywhere).push(re);
    }
  }

  /** Whether tree path `rel` (latin1-carried bytes) is left out. Parents are checked by the walk. */
  excludes(rel: string): boolean {
    const name = rel.slice(rel.lastIndexOf('/') + 1);
    for (const re of this.anywhere) if (re.test(name) || re.test(rel)) return true;
    for (const re of this.anchored) if (re.test(rel)) return true;
    return false;
  }
}

function globToRegex(glob: string): string {
  let out = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i] as string;
    if (c === '*' && glob[i + 1] === '*') {
      const slash = glob[i + 2] === '/';
      out += slash ? '(?:.*/)?' : '.*';
      i += slash ? 2 : 1;
    } else if (c === '*') out += '[^/]*';
    else if (c === '?') out += '[^/]';
    else out += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return out;
}

/** The archive folder as a tree path when it lies inside the tree, so it is never captured. */
export function archiveInsideTree(root: string, archiveDir: string): string | undefined {
  const rel = path.relative(root, archiveDir);
  if (rel === '' || rel.startsWith('..') || path.isAbsolute(rel)) return undefined;
  return `/${rel.split(path.sep).join('/')}`;
}
