import * as fs from 'node:fs';
import type { Consistency } from '../../../shared/states.js';
import { deviceNumbers, type PrimaryDevice } from './primary-device.js';

export interface ConsistencyGrade {
  consistency: Consistency;
  reason?: string;
}

/**
 * Whether anybody may write the device while it is read. A device mounted read-write (directly,
 * or an image file through a loop device) can change under the scan: the state is graded `none`
 * and says why. Linux only; elsewhere the mtime check in the snapshot is all there is.
 */
export function gradeSource(device: PrimaryDevice): ConsistencyGrade {
  const devNumbers = new Set<string>();
  if (device.type === 'block-device') {
    const { major, minor } = deviceNumbers(device.stat.rdev);
    devNumbers.add(`${major}:${minor}`);
  } else {
    for (const loop of loopDevicesBackedBy(device.path)) devNumbers.add(loop);
  }
  const mount = mountPointOf(devNumbers, { readWriteOnly: true });
  if (mount) {
    return {
      consistency: 'none',
      reason: `mounted read-write at ${mount} while it was read; use a snapshot or unmount it`,
    };
  }
  return { consistency: 'quiescent' };
}

function loopDevicesBackedBy(file: string): string[] {
  const found: string[] = [];
  let entries: string[];
  try {
    entries = fs.readdirSync('/sys/block').filter((e) => e.startsWith('loop'));
  } catch {
    return found;
  }
  for (const loop of entries) {
    try {
      const backing = fs.readFileSync(`/sys/block/${loop}/loop/backing_file`, 'utf8').trim();
      if (backing === file) found.push(fs.readFileSync(`/sys/block/${loop}/dev`, 'utf8').trim());
    } catch {
      // not attached
    }
  }
  return found;
}

/** Where one of the devices (as "major:minor") is mounted, read-write only if asked; Linux only. */
export function mountPointOf(
  devNumbers: Set<string>,
  { readWriteOnly }: { readWriteOnly: boolean },
): string | undefined {
  if (devNumbers.size === 0) return undefined;
  let text: string;
  try {
    text = fs.readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    return undefined;
  }
  for (const line of text.split('\n')) {
    const f = line.split(' ');
    const numbers = f[2];
    const mountPoint = f[4];
    const options = f[5]?.split(',') ?? [];
    if (
      numbers &&
      mountPoint &&
      devNumbers.has(numbers) &&
      (!readWriteOnly || options.includes('rw'))
    )
      return mountPoint;
  }
  return undefined;
}
