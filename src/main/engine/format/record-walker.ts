import { TidemarkError } from '../../../shared/errors.js';
import { alignedBuffer } from '../aligned-buffer.js';
import type { ObjectStore } from '../storage/object-store.js';
import { HASH_BYTES } from '../block-hash.js';
import { readRecordHeader, RECORD_HEADER_BYTES, type RecordHeader } from './update-format.js';

const CHUNK = 8 << 20;
const MAX_STORED = 64 << 20;

/**
 * Visits every stored-block record of an update in file order, reading the object in large
 * sequential chunks. `header.hash` and `stored` are views valid only during the visit. A record that does not fit
 * its lengths is reported as damage (`archive.corrupt`), naming the object and offset.
 */
export async function walkRecords(
  store: ObjectStore,
  name: string,
  start: number,
  end: number,
  visit: (header: RecordHeader, offset: number, stored: Buffer) => void | Promise<void>,
): Promise<void> {
  let buffer = alignedBuffer(CHUNK);
  let bufferStart = start;
  let bufferEnd = start;

  const ensure = async (from: number, length: number): Promise<Buffer> => {
    if (from >= bufferStart && from + length <= bufferEnd) {
      return buffer.subarray(from - bufferStart, from - bufferStart + length);
    }
    const want = Math.min(Math.max(length, CHUNK), end - from);
    if (want < length)
      throw new TidemarkError(
        'archive.corrupt',
        `${name}: record at ${from} runs past the records`,
      );
    if (buffer.length < want) buffer = alignedBuffer(want);
    await store.read(name, from, want, buffer);
    bufferStart = from;
    bufferEnd = from + want;
    return buffer.subarray(0, length);
  };

  const hash = Buffer.allocUnsafe(HASH_BYTES);
  let at = start;
  while (at < end) {
    const header = readRecordHeader(await ensure(at, RECORD_HEADER_BYTES));
    // The header is a view into the chunk, which reading the stored bytes may refill.
    header.hash.copy(hash);
    header.hash = hash;
    if (header.storedLength > MAX_STORED || header.rawLength > MAX_STORED) {
      throw new TidemarkError('archive.corrupt', `${name}: damaged record header at byte ${at}`);
    }
    const stored = await ensure(at + RECORD_HEADER_BYTES, header.storedLength);
    await visit(header, at, stored);
    at += RECORD_HEADER_BYTES + header.storedLength;
  }
}
