// Number inputs bound with bind:value hold a number, or null (or '') when emptied.

export const MIB = 2 ** 20;

/** A field's whole number: null when empty; undefined when it is not a whole number ≥ `min`. */
export function wholeField(n: number | null, min: number): number | null | undefined {
  if (n === null || (n as unknown) === '') return null;
  return Number.isInteger(n) && n >= min ? n : undefined;
}

/** Bytes from a MiB field: null when empty; undefined when it is not a whole number ≥ 1. */
export function mibField(n: number | null): number | null | undefined {
  const mib = wholeField(n, 1);
  return mib == null ? mib : mib * MIB;
}

/** An upload limit (bytes/s): null when empty; undefined below 1024 or not whole. */
export const uploadLimitField = (n: number | null): number | null | undefined =>
  wholeField(n, 1024);

export const UPLOAD_LIMIT_PROBLEM =
  'The upload limit is a whole number of bytes per second, at least 1024.';
