import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import * as path from 'node:path';
import { TidemarkError } from '../../../shared/errors.js';

export type DeviceType = 'file' | 'block-device';

/**
 * A device primary opened read-only: a raw image file or a block device. Tidemark never opens
 * the primary for writing except in a restore aimed at it.
 */
export class PrimaryDevice {
  private constructor(
    readonly path: string,
    readonly type: DeviceType,
    readonly size: number,
    private readonly handle: FileHandle,
    readonly stat: fs.Stats,
  ) {}

  static async open(primaryPath: string): Promise<PrimaryDevice> {
    const abs = path.resolve(primaryPath);
    const { stat, type } = await describeDevice(abs);
    let handle: FileHandle;
    try {
      handle = await fsp.open(abs, fs.constants.O_RDONLY);
    } catch (err) {
      throw primaryError(err, abs);
    }
    const size = type === 'file' ? stat.size : blockDeviceSize(stat, abs);
    return new PrimaryDevice(abs, type, size, handle, stat);
  }

  /** Fills `into` from `position`; a short read means the device shrank or vanished. */
  async read(into: Buffer, length: number, position: number): Promise<void> {
    let done = 0;
    try {
      while (done < length) {
        const { bytesRead } = await this.handle.read(into, done, length - done, position + done);
        if (bytesRead === 0) break;
        done += bytesRead;
      }
    } catch (err) {
      throw primaryError(err, this.path);
    }
    if (done < length) {
      throw new TidemarkError(
        'primary.vanished',
        `${this.path} ended early at byte ${position + done}: it shrank or vanished`,
      );
    }
  }

  /** Fresh metadata, to see whether anybody wrote the primary while it was read. */
  async restat(): Promise<fs.Stats> {
    try {
      return await this.handle.stat();
    } catch (err) {
      throw primaryError(err, this.path);
    }
  }

  async close(): Promise<void> {
    await this.handle.close().catch(() => undefined);
  }
}

export async function describeDevice(abs: string): Promise<{ stat: fs.Stats; type: DeviceType }> {
  let stat: fs.Stats;
  try {
    stat = await fsp.stat(abs);
  } catch (err) {
    throw primaryError(err, abs);
  }
  if (stat.isFile()) return { stat, type: 'file' };
  if (stat.isBlockDevice()) return { stat, type: 'block-device' };
  if (stat.isDirectory()) {
    throw new TidemarkError(
      'primary.unreadable',
      `${abs} is a folder; device mode needs a disk image or a block device`,
    );
  }
  throw new TidemarkError(
    'primary.unreadable',
    `${abs} is neither a disk image nor a block device`,
  );
}

export function deviceNumbers(rdev: number): { major: number; minor: number } {
  // Linux's dev_t encoding (glibc's gnu_dev_major/minor), without 32-bit bitwise truncation.
  const low = rdev % 0x1_0000_0000;
  const high = Math.floor(rdev / 0x1_0000_0000);
  const major = ((low >>> 8) & 0xfff) | ((high & 0xfffff000) >>> 0);
  const minor = (low & 0xff) | ((low >>> 12) & 0xfff00);
  return { major, minor };
}

/** Size in bytes of the block device `rdev` (Linux: /sys counts 512-byte sectors). Throws raw. */
export function blockDeviceBytes(rdev: number): number {
  const { major, minor } = deviceNumbers(rdev);
  return Number(fs.readFileSync(`/sys/dev/block/${major}:${minor}/size`, 'utf8').trim()) * 512;
}

function blockDeviceSize(stat: fs.Stats, abs: string): number {
  try {
    return blockDeviceBytes(stat.rdev);
  } catch (err) {
    throw new TidemarkError('primary.unreadable', `cannot read the size of block device ${abs}`, {
      cause: err,
    });
  }
}

export function primaryError(err: unknown, where: string): TidemarkError {
  if (err instanceof TidemarkError) return err;
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT' || code === 'ENOTDIR') {
    return new TidemarkError('primary.not-found', `the primary ${where} does not exist`, {
      cause: err,
    });
  }
  if (code === 'EACCES' || code === 'EPERM') {
    return new TidemarkError(
      'primary.unreadable',
      `no permission to read ${where}${process.getuid?.() === 0 ? '' : ' (reading a disk needs elevated rights)'}`,
      { cause: err },
    );
  }
  if (code === 'EIO' || code === 'ENXIO' || code === 'ENODEV') {
    return new TidemarkError(
      'primary.vanished',
      `the primary ${where} failed or vanished (${code})`,
      {
        cause: err,
        retryable: true,
      },
    );
  }
  return new TidemarkError(
    'primary.unreadable',
    `cannot read ${where}: ${(err as Error).message}`,
    { cause: err },
  );
}
