import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { blockDeviceInfo, majorMinor, wholeDisk } from '../../src/main/services/block-device.js';
import { checkChoice } from '../../src/main/services/drives.js';
import { rootSkipReason, sh } from '../helpers/root.js';
import { tempDir } from '../helpers/tmp.js';

// A disk or partition that drivelist does not list (loop devices here, partitions anywhere):
// its size and mounts come from the kernel, so the same refusals and warnings apply.

const makedev = (major: number, minor: number): number =>
  (minor & 0xff) | (major << 8) | ((minor & ~0xff) << 12);

describe('block devices as the primary', () => {
  it('spells device numbers as the kernel does', () => {
    expect(majorMinor(2049)).toBe('8:1');
    expect(majorMinor(makedev(7, 300))).toBe('7:300');
  });

  it.skipIf(rootSkipReason())(
    'a mounted loop disk: its size, and a backup on it refused',
    async () => {
      const dir = tempDir();
      const image = path.join(dir, 'disk.img');
      fs.writeFileSync(image, Buffer.alloc(0));
      fs.truncateSync(image, 48 << 20);
      sh('mkfs.ext4', ['-q', image]);
      const disk = sh('losetup', ['-f', '--show', image]).trim();
      const at = path.join(dir, 'mnt');
      fs.mkdirSync(at);
      let mounted = false;
      try {
        sh('mount', [disk, at]);
        mounted = true;
        expect(majorMinor(fs.statSync(disk).rdev)).toBe(
          fs.readFileSync(`/sys/class/block/${path.basename(disk)}/dev`, 'utf8').trim(),
        );
        const info = await blockDeviceInfo(disk, fs.statSync(disk).rdev);
        expect(info).toEqual({
          size: 48 << 20,
          disk: majorMinor(fs.statSync(disk).rdev),
          mountpoints: [at],
        });
        const onIt = await checkChoice('device', disk, path.join(at, 'archive'));
        expect(onIt.primarySize).toBe(48 << 20);
        expect(onIt.errors).toEqual([
          `${path.join(at, 'archive')} lies on ${disk} itself: keep the backup on another disk`,
        ]);
        const elsewhere = await checkChoice('device', disk, path.join(dir, 'archive'));
        expect(elsewhere.errors).toEqual([]);
        expect(elsewhere.warnings.join('\n')).not.toMatch(/same physical disk/);
      } finally {
        if (mounted) sh('umount', [at]);
        sh('losetup', ['-d', disk]);
      }
    },
  );

  // This kernel makes no partitions on loop devices (and there is no udev), so a partitioned
  // disk is laid out as /sys and /proc show one: real files, the kernel's names and formats.
  it('a partition belongs to its disk; a disk is mounted where its partitions are', async () => {
    const root = tempDir();
    const sys = path.join(root, 'sys');
    const proc = path.join(root, 'proc');
    const diskDir = path.join(sys, 'devices/pci0000:00/0000:00:1f.2/block/sdz');
    const write = (file: string, text: string): void => {
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.writeFileSync(file, `${text}\n`);
    };
    write(path.join(diskDir, 'dev'), '8:240');
    write(path.join(diskDir, 'size'), '2097152');
    for (const n of [1, 2]) {
      write(path.join(diskDir, `sdz${n}`, 'dev'), `8:${240 + n}`);
      write(path.join(diskDir, `sdz${n}`, 'partition'), String(n));
      write(path.join(diskDir, `sdz${n}`, 'size'), '1046528');
    }
    fs.mkdirSync(path.join(sys, 'dev/block'), { recursive: true });
    fs.symlinkSync(diskDir, path.join(sys, 'dev/block/8:240'));
    for (const n of [1, 2])
      fs.symlinkSync(path.join(diskDir, `sdz${n}`), path.join(sys, `dev/block/8:${240 + n}`));
    write(
      path.join(proc, 'self/mountinfo'),
      [
        '22 1 8:2 / / rw,relatime shared:1 - ext4 /dev/sda2 rw',
        '40 22 8:241 / /media/usb\\040stick rw,relatime shared:2 - ext4 /dev/sdz1 rw',
        '41 22 0:45 / /srv/pool rw,relatime shared:3 - btrfs /dev/sdz2 rw',
      ].join('\n'),
    );
    const roots = { sys, proc };
    expect(await wholeDisk('8:241', sys)).toBe('8:240');
    expect(await wholeDisk('8:240', sys)).toBe('8:240');
    expect(await wholeDisk('0:45', sys)).toBeNull();
    expect(await blockDeviceInfo('/dev/sdz', makedev(8, 240), roots)).toEqual({
      size: 1 << 30,
      disk: '8:240',
      mountpoints: ['/media/usb stick', '/srv/pool'],
    });
    // The btrfs mount shows an anonymous device number; its source names the partition.
    expect(await blockDeviceInfo('/dev/sdz2', makedev(8, 242), roots)).toEqual({
      size: 1046528 * 512,
      disk: '8:240',
      mountpoints: ['/srv/pool'],
    });
  });
});
