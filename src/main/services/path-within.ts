// Whether one path lies inside another, for the refusals that keep a backup off the data it
// protects and a restore off live data. Compared as spelled and again with symlinks resolved, so
// neither a link nor a name such as `..backup` can slip past.
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';

/** `inner` is `outer` or lies inside it, as spelled (both made absolute). */
export function isWithin(outer: string, inner: string): boolean {
  const rel = path.relative(path.resolve(outer), path.resolve(inner));
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel));
}

/** The deepest part of `p` that exists (the root at worst). */
export function nearestExisting(p: string): string {
  let dir = path.resolve(p);
  while (!fs.existsSync(dir) && path.dirname(dir) !== dir) dir = path.dirname(dir);
  return dir;
}

/** `p` with the symlinks of its existing part resolved; the part not made yet follows as spelled. */
export async function realPath(p: string): Promise<string> {
  const abs = path.resolve(p);
  const existing = nearestExisting(abs);
  const real = await fsp.realpath(existing).catch(() => existing);
  return path.join(real, path.relative(existing, abs));
}

/** `inner` is `outer` or lies inside it, as spelled or once symlinks are resolved. */
export async function liesWithin(outer: string, inner: string): Promise<boolean> {
  return isWithin(outer, inner) || isWithin(await realPath(outer), await realPath(inner));
}
