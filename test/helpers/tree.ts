import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

/** Deterministic pseudo-random numbers (xorshift32), so failures reproduce. */
export function prng(seed: number): (n: number) => number {
  let x = seed >>> 0 || 1;
  return (n: number) => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x % n;
  };
}

export function randomBytes(rand: (n: number) => number, length: number): Buffer {
  const b = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) b[i] = rand(256);
  return b;
}

export function writeAt(file: string, offset: number, data: Buffer): void {
  const fd = fs.openSync(file, 'r+');
  fs.writeSync(fd, data, 0, data.length, offset);
  fs.closeSync(fd);
}

/** A copy that keeps modes, times, links and hard links: the reference a restore must equal. */
export function copyTree(from: string, to: string): void {
  execFileSync('cp', ['-a', from, to]);
}

interface Seen {
  type: string;
  mode: number;
  size: number;
  mtimeNs: bigint;
  target?: string;
  sha?: string;
}

/** Every entry under `root` by relative path (raw bytes as latin1), with what a restore must keep. */
export function describeTree(
  root: string | Buffer,
  skip: (rel: string) => boolean = () => false,
): Map<string, Seen> {
  const out = new Map<string, Seen>();
  const base = Buffer.isBuffer(root) ? root : Buffer.from(root);
  const walk = (rel: string): void => {
    const dir = rel === '' ? base : Buffer.concat([base, Buffer.from(`/${rel}`, 'latin1')]);
    for (const name of fs.readdirSync(dir, { encoding: 'buffer' })) {
      const r = rel === '' ? name.toString('latin1') : `${rel}/${name.toString('latin1')}`;
      if (skip(r)) continue;
      const abs = Buffer.concat([base, Buffer.from(`/${r}`, 'latin1')]);
      const st = fs.lstatSync(abs, { bigint: true });
      const seen: Seen = {
        type: st.isFile()
          ? 'file'
          : st.isDirectory()
            ? 'dir'
            : st.isSymbolicLink()
              ? 'symlink'
              : st.isFIFO()
                ? 'fifo'
                : 'other',
        mode: Number(st.mode & 0o7777n),
        size: st.isFile() ? Number(st.size) : 0,
        mtimeNs: st.mtimeNs,
      };
      if (st.isSymbolicLink())
        seen.target = fs.readlinkSync(abs, { encoding: 'buffer' }).toString('latin1');
      if (st.isFile()) seen.sha = createHash('sha256').update(fs.readFileSync(abs)).digest('hex');
      out.set(r, seen);
      if (st.isDirectory()) walk(r);
    }
  };
  walk('');
  return out;
}

/** Differences between two trees, as lines (empty: identical). mtimes must agree within 2 µs. */
export function treeDifferences(expected: Map<string, Seen>, actual: Map<string, Seen>): string[] {
  const diffs: string[] = [];
  for (const [p, e] of expected) {
    const a = actual.get(p);
    if (!a) {
      diffs.push(`missing ${p}`);
      continue;
    }
    for (const k of ['type', 'mode', 'size', 'target', 'sha'] as const)
      if (e[k] !== a[k]) diffs.push(`${p}: ${k} ${String(a[k])} instead of ${String(e[k])}`);
    const drift = a.mtimeNs - e.mtimeNs;
    if (drift > 2000n || drift < -2000n) diffs.push(`${p}: mtime off by ${drift} ns`);
  }
  for (const p of actual.keys()) if (!expected.has(p)) diffs.push(`extra ${p}`);
  return diffs;
}

/** Relative path → content sha256 (files) or 'dir', for comparing folder trees. */
export function treeDigest(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (dir: string): void => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      const rel = path.relative(root, p);
      if (e.isDirectory()) {
        out[rel] = 'dir';
        walk(p);
      } else out[rel] = createHash('sha256').update(fs.readFileSync(p)).digest('hex');
    }
  };
  walk(root);
  return out;
}
