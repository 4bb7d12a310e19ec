/**
 * Reading one state of a volume for the app's tree browser and restore plan: the children of a
 * folder, and the size of what a restore of one path would write. Read-only; no lock taken.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { TidemarkError } from '../../shared/errors.js';
import type {
  BrowseEntry,
  BrowseReport,
  SearchReport,
  VolumeMeasure,
} from '../../shared/states.js';
import { Archive } from './archive.js';
import { resolveState } from './restore.js';
import { loadVolumeTree } from './volume/tree-loader.js';
import { displayPath, type VolumeEntry } from './volume/volume-entry.js';
import type { VolumeTree } from './volume/volume-tree.js';
import { isVolumeManifest } from './volume-engine.js';

/** A folder of a million files is listed a page at a time. */
export const BROWSE_MAX_LIMIT = 5000;

/**
 * The last tree loaded, per archive: the browser asks for one folder after another of the same
 * state, and replaying the updates up to a state costs far more than a lookup.
 */
const cache = new Map<
  string,
  { stateId: number; stateHash: string; tree: VolumeTree; timer: NodeJS.Timeout }
>();
/** A tree of a big folder holds every block hash: dropped when nobody browsed for a while. */
const CACHE_IDLE_MS = 5 * 60_000;

function keep(dir: string, stateId: number, stateHash: string, tree: VolumeTree): void {
  const old = cache.get(dir);
  if (old) clearTimeout(old.timer);
  const timer = setTimeout(() => cache.delete(dir), CACHE_IDLE_MS);
  timer.unref();
  cache.set(dir, { stateId, stateHash, tree, timer });
}

async function stateTree(
  archiveDir: string,
  stateId: number,
): Promise<{ tree: VolumeTree; root: string }> {
  const dir = path.resolve(archiveDir);
  if (!fs.existsSync(dir)) throw new TidemarkError('archive.not-found', `no archive at ${dir}`);
  const archive = await Archive.open(dir, { write: false });
  try {
    if (!isVolumeManifest(archive.manifest))
      throw new TidemarkError('usage', `${dir} is the archive of a device, not of a folder`);
    const state = resolveState(archive, { stateId });
    const root = archive.manifest.primary.path;
    const hit = cache.get(dir);
    const tree =
      hit && hit.stateId === state.id && hit.stateHash === state.stateHash
        ? hit.tree
        : await loadVolumeTree(archive, state.id);
    keep(dir, state.id, state.stateHash, tree);
    return { tree, root };
  } finally {
    await archive.close();
  }
}

/**
 * A path as the user gives it (relative to the protected folder, or absolute inside it) as the
 * tree's key: '/'-separated, raw bytes as latin1. Refuses what lies outside the folder.
 */
export function treeKeyOf(root: string, given: string): string {
  const rel = path.isAbsolute(given) ? path.relative(root, given) : given;
  const norm = path.posix.normalize(rel.split(path.sep).join('/')).replace(/^\.?\/+|\/+$/g, '');
  if (norm === '..' || norm.startsWith('../') || path.isAbsolute(norm))
    throw new TidemarkError('usage', `${given} is not a path inside the protected folder ${root}`);
  return norm === '.' ? '' : Buffer.from(norm, 'utf8').toString('latin1');
}

function entryOf(e: VolumeEntry): BrowseEntry {
  const p = displayPath(e.path);
  return {
    name: p.slice(p.lastIndexOf('/') + 1),
    path: p,
    type: e.type,
    size: e.type === 'file' ? e.size : 0,
    mtime: new Date(Number(e.mtimeNs / 1_000_000n)).toISOString(),
  };
}

export async function browseVolume(
  archiveDir: string,
  stateId: number,
  folder: string,
  offset = 0,
  limit = 1000,
): Promise<BrowseReport> {
  const { tree, root } = await stateTree(archiveDir, stateId);
  const key = treeKeyOf(root, folder);
  if (key !== '') {
    const entry = tree.get(key);
    if (!entry)
      throw new TidemarkError('state.not-found', `${displayPath(key)} is not in state ${stateId}`);
    if (entry.type !== 'dir')
      throw new TidemarkError('usage', `${displayPath(key)} is a ${entry.type}, not a folder`);
  }
  const all: VolumeEntry[] = [];
  for (const p of tree.childrenOf(key)) {
    const e = tree.get(p);
    if (e) all.push(e);
  }
  // Folders first, then by name, the way file managers list.
  all.sort((a, b) =>
    a.type === 'dir' && b.type !== 'dir'
      ? -1
      : b.type === 'dir' && a.type !== 'dir'
        ? 1
        : a.path < b.path
          ? -1
          : a.path > b.path
            ? 1
            : 0,
  );
  const take = Math.max(1, Math.min(limit, BROWSE_MAX_LIMIT));
  return {
    state: stateId,
    path: displayPath(key),
    total: all.length,
    offset,
    entries: all.slice(offset, offset + take).map(entryOf),
  };
}

/**
 * Entries of state `stateId` whose name (not the folders above it) holds `query`, ignoring case:
 * "where is my thesis.docx?".
 */
export async function searchVolume(
  archiveDir: string,
  stateId: number,
  query: string,
  limit = 200,
): Promise<SearchReport> {
  const q = query.trim().toLowerCase();
  if (q === '') throw new TidemarkError('usage', 'type part of a name to search for');
  const { tree } = await stateTree(archiveDir, stateId);
  const found: VolumeEntry[] = [];
  for (const e of tree.values()) {
    const name = displayPath(e.path.slice(e.path.lastIndexOf('/') + 1));
    if (name.toLowerCase().includes(q)) found.push(e);
  }
  found.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return {
    state: stateId,
    query,
    total: found.length,
    entries: found.slice(0, Math.max(1, Math.min(limit, BROWSE_MAX_LIMIT))).map(entryOf),
  };
}

/** What a restore of `given` ('' for everything) from state `stateId` would write. */
export async function measureVolume(
  archiveDir: string,
  stateId: number,
  given: string,
): Promise<VolumeMeasure> {
  const { tree, root } = await stateTree(archiveDir, stateId);
  const key = treeKeyOf(root, given);
  const chosen = key === '' ? null : tree.get(key);
  if (key !== '' && !chosen)
    throw new TidemarkError('state.not-found', `${displayPath(key)} is not in state ${stateId}`);
  let files = 0;
  let bytes = 0;
  const count = (e: VolumeEntry): void => {
    if (e.type !== 'file') return;
    files++;
    bytes += e.size;
  };
  if (key === '') for (const e of tree.values()) count(e);
  else if (chosen?.type !== 'dir') count(chosen as VolumeEntry);
  else {
    const prefix = `${key}/`;
    for (const e of tree.values()) if (e.path.startsWith(prefix)) count(e);
  }
  return { state: stateId, path: displayPath(key), type: chosen?.type ?? 'dir', files, bytes };
}
