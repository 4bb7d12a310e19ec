import { HASH_BYTES, zeroHash } from '../block-hash.js';
import type { UpdateReader } from '../format/update-reader.js';
import { forEachChange } from '../volume/tree-loader.js';

/**
 * Calls `visit` for every block hash an update's map (device, zero blocks left out: they are
 * never stored) or entries (volume) name. `hash` is a view valid only during the call.
 */
export async function forEachReferencedBlock(
  update: UpdateReader,
  kind: 'device' | 'volume',
  visit: (hash: Buffer) => void,
): Promise<void> {
  if (kind === 'device') {
    const { blockSize, primarySize } = update.meta;
    const full = zeroHash(blockSize);
    const last = zeroHash(primarySize % blockSize || blockSize);
    await update.forEachMapEntry((_i, hash) => {
      if (!full.equals(hash) && !last.equals(hash)) visit(hash);
    });
    return;
  }
  await forEachChange(update, (c) => {
    const blocks = c.op === 'upsert' ? c.entry.blocks : undefined;
    if (!blocks) return;
    for (let at = 0; at < blocks.length; at += HASH_BYTES)
      visit(blocks.subarray(at, at + HASH_BYTES));
  });
}
