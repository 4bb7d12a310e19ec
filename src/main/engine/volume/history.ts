import { TidemarkError } from '../../../shared/errors.js';
import type { DiffEntry, DiffReport, FileVersion } from '../../../shared/states.js';
import type { Archive } from '../archive.js';
import { sameEntry } from './tree-scanner.js';
import { loadVolumeTree } from './tree-loader.js';
import { displayPath, type VolumeEntry } from './volume-entry.js';

/**
 * The versions of one path across all states, oldest first: a row for each state in which it
 * exists with content or metadata different from the row before (so a state that left it alone
 * adds no row). A path removed and later made again appears again from the state that made it.
 */
export async function fileHistory(archive: Archive, key: string): Promise<FileVersion[]> {
  const latest = archive.catalog.latestState();
  if (!latest) return [];
  const times = new Map(archive.catalog.states().map((s) => [s.id, s.time]));
  const versions: FileVersion[] = [];
  let previous: VolumeEntry | undefined;
  await loadVolumeTree(archive, latest.id, (id, tree) => {
    const e = tree.get(key);
    if (e && !(previous && sameEntry(previous, e)))
      versions.push(versionOf(id, times.get(id) ?? '', e));
    previous = e;
  });
  if (versions.length === 0)
    throw new TidemarkError(
      'state.not-found',
      `${displayPath(key)} is in no state of this archive`,
    );
  return versions;
}

function versionOf(state: number, time: string, e: VolumeEntry): FileVersion {
  const v: FileVersion = {
    state,
    time,
    type: e.type,
    size: e.size,
    mode: e.mode,
    mtime: new Date(Number(e.mtimeNs / 1_000_000n)).toISOString(),
  };
  if (e.contentHash) v.contentHash = e.contentHash.toString('hex');
  if (e.target !== undefined) v.target = displayPath(e.target);
  return v;
}

/** Paths added, removed and modified from state `a` to state `b`, with their sizes. */
export async function diffStates(archive: Archive, a: number, b: number): Promise<DiffReport> {
  for (const id of [a, b])
    if (!archive.catalog.state(id))
      throw new TidemarkError('state.not-found', `state ${id} does not exist in this archive`);
  let fromEntries: VolumeEntry[] = [];
  const first = Math.min(a, b);
  const treeB = await loadVolumeTree(archive, Math.max(a, b), (id, tree) => {
    if (id === first) fromEntries = tree.sorted();
  });
  let toEntries = treeB.sorted();
  if (a > b) [fromEntries, toEntries] = [toEntries, fromEntries];
  const report: DiffReport = {
    from: a,
    to: b,
    added: 0,
    removed: 0,
    modified: 0,
    bytesAdded: 0,
    bytesRemoved: 0,
    entries: [],
  };
  const to = new Map(toEntries.map((e) => [e.path, e]));
  const from = new Map(fromEntries.map((e) => [e.path, e]));
  const push = (d: DiffEntry): void => {
    report.entries.push(d);
    report[d.change]++;
  };
  for (const e of fromEntries) {
    const after = to.get(e.path);
    if (!after) {
      push({ path: displayPath(e.path), change: 'removed', type: e.type, sizeA: e.size });
      report.bytesRemoved += e.size;
    } else if (!sameEntry(e, after)) {
      push({
        path: displayPath(e.path),
        change: 'modified',
        type: after.type,
        sizeA: e.size,
        sizeB: after.size,
      });
      if (after.size > e.size) report.bytesAdded += after.size - e.size;
      else report.bytesRemoved += e.size - after.size;
    }
  }
  for (const e of toEntries) {
    if (from.has(e.path)) continue;
    push({ path: displayPath(e.path), change: 'added', type: e.type, sizeB: e.size });
    report.bytesAdded += e.size;
  }
  report.entries.sort((x, y) => (x.path < y.path ? -1 : x.path > y.path ? 1 : 0));
  return report;
}
