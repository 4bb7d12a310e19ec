// The bytes a folder's files hold, for the "too small" warning of a new volume job. Bounded:
// the check runs as the user types, so a huge tree answers "unknown" instead of a long scan.
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';

const MAX_ENTRIES = 100_000;
const MAX_MS = 2_000;

/** Total file bytes under `root`, or null when the tree is too big to add up quickly. */
export async function folderSize(root: string): Promise<number | null> {
  const started = Date.now();
  let entries = 0;
  let bytes = 0;
  const pending = [root];
  while (pending.length > 0) {
    const dir = pending.pop() as string;
    let list;
    try {
      list = await fsp.readdir(dir, { withFileTypes: true });
    } catch {
      // Unreadable folders are the capture's to report; here they only count as empty.
      continue;
    }
    for (const d of list) {
      if (++entries > MAX_ENTRIES || Date.now() - started > MAX_MS) return null;
      const p = path.join(dir, d.name);
      if (d.isDirectory()) pending.push(p);
      else if (d.isFile()) bytes += (await fsp.lstat(p).catch(() => null))?.size ?? 0;
    }
  }
  return bytes;
}
