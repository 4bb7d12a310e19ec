import { TidemarkError } from '../../shared/errors.js';

const UNITS: Record<string, number> = { '': 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40 };

/** Bytes from `123`, `512K`, `2G`, `1.5GiB` (binary multiples); a usage error otherwise. */
export function parseSize(value: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?$/i.exec(value.trim());
  const unit = m ? UNITS[(m[2] ?? '').toUpperCase()] : undefined;
  const bytes = m && unit !== undefined ? Math.floor(Number(m[1]) * unit) : NaN;
  if (!Number.isSafeInteger(bytes) || bytes <= 0)
    throw new TidemarkError(
      'usage',
      `${flag} needs a size in bytes such as 500M or 2G, got ${value}`,
    );
  return bytes;
}
