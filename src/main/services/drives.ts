// Disks as drivelist sees them, and what we think of a primary/secondary pair before a job is
// made of it. drivelist hides loop devices on Linux; folders and image files are chosen by path.
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import drivelist from 'drivelist';
import type { ChoiceCheck, DriveInfo } from '../../shared/api.js';
import type { JobMode } from '../../shared/jobs.js';
import { formatBytes } from '../cli/format-human.js';
import { MANIFEST_NAME } from '../engine/format/archive-manifest.js';
import { blockDeviceInfo, majorMinor, wholeDisk } from './block-device.js';
import { folderSize } from './folder-size.js';
import { liesWithin, nearestExisting, realPath } from './path-within.js';

export async function listDrives(): Promise<DriveInfo[]> {
  const drives = await drivelist.list();
  return drives
    .filter((d) => !d.isVirtual || d.mountpoints.length > 0)
    .map((d) => ({
      device: d.device,
      description: d.description || d.device,
      size: d.size,
      mountpoints: d.mountpoints.map((m) => m.path),
      removable: d.isRemovable,
      system: d.isSystem,
      readOnly: d.isReadOnly,
    }))
    .sort((a, b) => Number(b.removable) - Number(a.removable));
}

/** Free bytes on the filesystem that holds `p` (or would, for a path not made yet). */
export async function freeBytes(p: string): Promise<number | null> {
  try {
    const s = await fsp.statfs(nearestExisting(p));
    return s.bavail * s.bsize;
  } catch {
    return null;
  }
}

/** How a person gets read access to a disk here (the desktop app itself cannot run as root). */
function elevationAdvice(): string {
  if (process.platform === 'win32') return 'run Tidemark as administrator';
  if (process.platform === 'darwin')
    return 'run `sudo npx tidemark serve` and use Tidemark in the browser';
  return 'add yourself to the disk group (`sudo usermod -aG disk $USER`, then log in again), or run `sudo npx tidemark serve` and use Tidemark in the browser';
}

async function canRead(p: string): Promise<boolean> {
  try {
    await fsp.access(p, fs.constants.R_OK);
    return true;
  } catch {
    return false;
  }
}

export async function checkChoice(
  mode: JobMode,
  primaryIn: string,
  secondaryIn: string,
  drives: DriveInfo[] = [],
): Promise<ChoiceCheck> {
  const primary = path.resolve(primaryIn);
  const secondary = path.resolve(secondaryIn);
  const check: ChoiceCheck = { errors: [], warnings: [], needsElevation: false, primarySize: null };
  let stat: fs.Stats | null = null;
  try {
    stat = await fsp.stat(primary);
  } catch {
    check.errors.push(`${primary} does not exist`);
  }
  if (stat) {
    if (mode === 'volume' && !stat.isDirectory()) {
      check.errors.push(
        `${primary} is not a folder: choose a folder, or protect it as a disk or image`,
      );
    } else if (mode === 'device' && stat.isDirectory()) {
      check.errors.push(`${primary} is a folder: choose an image file or a disk`);
    } else if (mode === 'device' && !stat.isFile() && !stat.isBlockDevice()) {
      check.errors.push(`${primary} is neither an image file nor a disk`);
    } else if (!(await canRead(primary))) {
      check.needsElevation = stat.isBlockDevice();
      check.errors.push(
        stat.isBlockDevice()
          ? `reading ${primary} needs more rights: ${elevationAdvice()}`
          : `${primary} cannot be read: check its permissions`,
      );
    }
    if (stat.isFile()) check.primarySize = stat.size;
    if (mode === 'volume' && stat.isDirectory()) check.primarySize = await folderSize(primary);
    if (stat.isBlockDevice()) await checkBlockDevice(primary, stat, secondary, drives, check);
  }
  if (secondary === primary || (await realPath(secondary)) === (await realPath(primary)))
    check.errors.push('the backup cannot be the primary itself');
  else if (await liesWithin(primary, secondary))
    check.errors.push(`${secondary} lies inside the primary`);
  else if (await liesWithin(secondary, primary))
    check.errors.push(`the primary lies inside ${secondary}: choose a folder elsewhere`);
  await checkSecondaryFolder(secondary, primary, check);
  const free = await freeBytes(secondary);
  if (check.primarySize !== null && free !== null && free < check.primarySize) {
    check.warnings.push(
      `the backup disk has ${formatBytes(free)} free; the baseline may need up to ${formatBytes(check.primarySize)}`,
    );
  }
  return check;
}

/**
 * A disk or partition as the primary: its size, and whether the backup would sit on it (refused)
 * or on another partition of the same disk (said: one failing disk would take both).
 */
async function checkBlockDevice(
  primary: string,
  stat: fs.Stats,
  secondary: string,
  drives: DriveInfo[],
  check: ChoiceCheck,
): Promise<void> {
  const drive = drives.find((d) => d.device === primary);
  const kernel = process.platform === 'linux' ? await blockDeviceInfo(primary, stat.rdev) : null;
  check.primarySize = drive?.size ?? kernel?.size ?? null;
  const mountpoints = new Set([...(drive?.mountpoints ?? []), ...(kernel?.mountpoints ?? [])]);
  for (const mount of mountpoints) {
    if (await liesWithin(mount, secondary)) {
      check.errors.push(`${secondary} lies on ${primary} itself: keep the backup on another disk`);
      return;
    }
  }
  if (!kernel?.disk) return;
  const where = await fsp.stat(nearestExisting(secondary)).catch(() => null);
  const secondaryDisk = where ? await wholeDisk(majorMinor(where.dev)) : null;
  if (secondaryDisk === kernel.disk)
    check.warnings.push(
      `${secondary} is on the same physical disk as ${primary}: if that disk fails, both are lost`,
    );
}

async function checkSecondaryFolder(
  secondary: string,
  primary: string,
  check: ChoiceCheck,
): Promise<void> {
  let entries: string[];
  try {
    entries = await fsp.readdir(secondary);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOTDIR') check.errors.push(`${secondary} is a file: choose a folder`);
    // Absent: it will be created.
    return;
  }
  if (entries.includes(MANIFEST_NAME)) {
    try {
      const manifest = JSON.parse(await fsp.readFile(path.join(secondary, MANIFEST_NAME), 'utf8'));
      if (manifest?.primary?.path === primary)
        check.warnings.push(
          `${secondary} already holds an archive of this primary: the job continues it`,
        );
      else check.errors.push(`${secondary} holds the archive of another primary`);
    } catch {
      check.errors.push(`${secondary} holds an unreadable archive`);
    }
  } else if (entries.length > 0) {
    check.errors.push(`${secondary} is not empty: choose an empty or new folder`);
  }
}
