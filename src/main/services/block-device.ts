// What Linux says of a block device that drivelist does not list (a partition such as /dev/sda1,
// a loop device): its size, the disk it belongs to, and where it and its partitions are mounted.
// Read from /sys and /proc/self/mountinfo; elsewhere (or when they are missing) nothing is known.
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';

export interface BlockDeviceInfo {
  /** Bytes, or null when the kernel does not say. */
  size: number | null;
  /** `major:minor` of the whole disk holding it (its own for a whole disk). */
  disk: string | null;
  /** Where it, or for a whole disk any of its partitions, is mounted. */
  mountpoints: string[];
}

/** `major:minor` of a device number, as the kernel spells it in /sys and mountinfo. */
export function majorMinor(rdev: number): string {
  // glibc's gnu_dev_major/minor; device numbers fit in 32 bits in practice, so plain arithmetic.
  const major = Math.floor(rdev / 256) & 0xfff;
  const minor = (rdev & 0xff) | (Math.floor(rdev / 4096) & 0xfff00);
  return `${major}:${minor}`;
}

async function readText(file: string): Promise<string | null> {
  return fsp.readFile(file, 'utf8').then(
    (t) => t.trim(),
    () => null,
  );
}

/** The sysfs folder of a device, e.g. /sys/devices/.../block/sda/sda1. */
async function sysfsDir(devno: string, sys: string): Promise<string | null> {
  return fsp.realpath(path.join(sys, 'dev/block', devno)).catch(() => null);
}

/** `major:minor` of the whole disk a device belongs to (itself when it is not a partition). */
export async function wholeDisk(devno: string, sys = '/sys'): Promise<string | null> {
  const dir = await sysfsDir(devno, sys);
  if (!dir) return null;
  if ((await readText(path.join(dir, 'partition'))) === null) return devno;
  return readText(path.join(path.dirname(dir), 'dev'));
}

/** The partitions of a whole disk: `major:minor` and kernel name (sda1). */
async function partitionsOf(
  devno: string,
  sys: string,
): Promise<Array<{ devno: string; name: string }>> {
  const dir = await sysfsDir(devno, sys);
  if (!dir) return [];
  const found: Array<{ devno: string; name: string }> = [];
  for (const name of await fsp.readdir(dir).catch(() => [] as string[])) {
    if ((await readText(path.join(dir, name, 'partition'))) === null) continue;
    const dev = await readText(path.join(dir, name, 'dev'));
    if (dev) found.push({ devno: dev, name });
  }
  return found;
}

/** Mount points by `major:minor` and by source path, from /proc/self/mountinfo. */
async function mounts(proc: string): Promise<Array<{ devno: string; source: string; at: string }>> {
  const text = (await readText(path.join(proc, 'self/mountinfo'))) ?? '';
  const unescape = (s: string): string =>
    s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  return text.split('\n').flatMap((line) => {
    const fields = line.split(' ');
    const dash = fields.indexOf('-');
    const devno = fields[2];
    const at = fields[4];
    const source = fields[dash + 2];
    if (dash < 0 || !devno || !at || !source) return [];
    return [{ devno, source: unescape(source), at: unescape(at) }];
  });
}

/** What the kernel says of the block device `device` whose device number is `rdev`. */
export async function blockDeviceInfo(
  device: string,
  rdev: number,
  roots: { sys?: string; proc?: string } = {},
): Promise<BlockDeviceInfo> {
  const sys = roots.sys ?? '/sys';
  const proc = roots.proc ?? '/proc';
  const devno = majorMinor(rdev);
  const dir = await sysfsDir(devno, sys);
  const sectors = dir ? await readText(path.join(dir, 'size')) : null;
  const disk = await wholeDisk(devno, sys);
  // A whole disk is in use wherever one of its partitions is mounted. Filesystems such as btrfs
  // show an anonymous device number in mountinfo, so the mount's source path counts too.
  const parts = disk === devno ? await partitionsOf(devno, sys) : [];
  const numbers = new Set([devno, ...parts.map((p) => p.devno)]);
  const real = await fsp.realpath(device).catch(() => device);
  const sources = new Set([device, real, ...parts.map((p) => `/dev/${p.name}`)]);
  const mountpoints = (await mounts(proc))
    .filter((m) => numbers.has(m.devno) || sources.has(m.source))
    .map((m) => m.at);
  return {
    size: sectors !== null && /^\d+$/.test(sectors) ? Number(sectors) * 512 : null,
    disk,
    mountpoints: [...new Set(mountpoints)],
  };
}
