/**
 * Little-endian u64 fields as two u32 (low word first), for values below 2^53: offsets, sizes
 * and block indexes. Plain numbers, so no BigInt is allocated per field.
 */
const WORD = 0x1_0000_0000;

export function writeU64(b: Buffer, value: number, at: number): void {
  b.writeUInt32LE(value % WORD, at);
  b.writeUInt32LE(Math.floor(value / WORD), at + 4);
}

export function readU64(b: Buffer, at: number): number {
  return b.readUInt32LE(at) + b.readUInt32LE(at + 4) * WORD;
}
