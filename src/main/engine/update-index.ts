import type { Catalog } from './catalog.js';
import { walkRecords } from './format/record-walker.js';
import { RECORD_BLOCK } from './format/update-format.js';
import type { UpdateReader } from './format/update-reader.js';
import { stateIdOf } from './update-names.js';
import { TidemarkError } from '../../shared/errors.js';

/**
 * Records one committed update in the catalog from the update alone: its state and every block
 * it stores. Used for catalog rebuild and to finish a snapshot that crashed after its commit.
 */
export async function indexUpdate(catalog: Catalog, reader: UpdateReader): Promise<void> {
  const m = reader.meta;
  if (stateIdOf(reader.name) !== m.stateId) {
    throw new TidemarkError('archive.corrupt', `${reader.name} claims to be state ${m.stateId}`);
  }
  const blobs: Parameters<Catalog['recordState']>[1] = [];
  const [start, end] = reader.recordsRange;
  await walkRecords(reader.store, reader.name, start, end, (header, offset) => {
    if (header.kind !== RECORD_BLOCK) return;
    blobs.push({
      hash: Buffer.from(header.hash),
      offset,
      storedLength: header.storedLength,
      rawLength: header.rawLength,
      codec: header.codec,
    });
  });
  const row = {
    id: m.stateId,
    parent: m.parentStateId,
    time: m.time,
    timeMs: Date.parse(m.time),
    update: reader.name,
    changedBlocks: m.changedBlocks,
    storedBytes: reader.size,
    stateHash: m.stateHash,
    consistency: m.consistency,
    ...(m.consistencyReason ? { consistencyReason: m.consistencyReason } : {}),
  };
  catalog.recordState(row, blobs);
}
