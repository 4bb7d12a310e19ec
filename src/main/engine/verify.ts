import { TidemarkError } from '../../shared/errors.js';
import type { VerifyProblem, VerifyReport } from '../../shared/states.js';
import type { Archive } from './archive.js';
import { BlockCodec } from './block-codec.js';
import { hashBlock } from './block-hash.js';
import { walkRecords } from './format/record-walker.js';
import { RECORD_MAP_FRAME } from './format/update-format.js';
import { UpdateReader } from './format/update-reader.js';
import { StateMap } from './state-map.js';
import { stateIdOf } from './update-names.js';

export interface VerifyOptions {
  deep?: boolean;
  onProgress?: (done: number, total: number) => void;
}

/**
 * Checks every checksum of every update: the map and meta checksum, and every stored block
 * decompressed and hashed against its content address. Damage is reported per object with the
 * states it touches (those whose block maps reference a damaged or missing block, or that are
 * built on a damaged map); the other states stay restorable. `deep` also rebuilds every state's
 * block map and recomputes its state hash.
 */
export async function verifyArchive(
  archive: Archive,
  options: VerifyOptions = {},
): Promise<VerifyReport> {
  const { blockSize, primary } = archive.manifest;
  const names = await archive.updateNames();
  const report: VerifyReport = {
    ok: true,
    deep: options.deep === true,
    updatesChecked: 0,
    blocksChecked: 0,
    bytesChecked: 0,
    statesChecked: 0,
    problems: [],
  };
  const codec = new BlockCodec(blockSize);
  const block = Buffer.allocUnsafe(blockSize);
  const good = new Set<string>();
  const damagedBlocks = new Map<string, string>();
  const readers: Array<{ id: number; reader: UpdateReader | null; problem: VerifyProblem | null }> =
    [];

  for (const name of names) {
    const id = stateIdOf(name) as number;
    let reader: UpdateReader | null = null;
    let problem: VerifyProblem | null = null;
    try {
      reader = await UpdateReader.open(archive.store, name);
      const [start, end] = reader.recordsRange;
      await walkRecords(archive.store, name, start, end, (header, offset, stored) => {
        report.bytesChecked += stored.length;
        if (header.kind === RECORD_MAP_FRAME) {
          // A damaged frame breaks this update's map: the replay below finds it and names the states.
          if (!hashBlock(stored).equals(header.hash))
            problem ??= { file: name, message: `damaged block map at byte ${offset}`, states: [] };
          return;
        }
        report.blocksChecked++;
        const key = header.hash.toString('latin1');
        try {
          const data = codec.decompress(header.codec, stored, block, header.rawLength, name);
          if (hashBlock(data).equals(header.hash)) {
            good.add(key);
            return;
          }
        } catch {
          // reported below
        }
        damagedBlocks.set(key, name);
        problem ??= { file: name, message: `damaged block at byte ${offset}`, states: [] };
      });
    } catch (err) {
      if (!(err instanceof TidemarkError) || err.code === 'archive.newer-format') throw err;
      problem ??= { file: name, message: err.message, states: [] };
      if (reader) markRestOfUpdateDamaged(archive, name, good, damagedBlocks);
    }
    report.updatesChecked++;
    readers.push({ id, reader, problem });
    options.onProgress?.(report.updatesChecked, names.length);
  }

  // Replay the states in order, counting references to blocks that are not intact.
  const map = new StateMap(primary.size, blockSize);
  const badRefs = { count: 0 };
  let brokenChainFrom: VerifyProblem | null = null;
  const recorded = new Map(archive.catalog.states().map((s) => [s.id, s]));
  for (const { id, reader, problem } of readers) {
    if (!reader) {
      brokenChainFrom ??= problem;
      problem?.states.push(id);
      continue;
    }
    try {
      await reader.forEachMapEntry((index, hash) => {
        if (!intact(map.hashAt(index), good, map, index)) badRefs.count--;
        map.set(index, hash);
        if (!intact(hash, good, map, index)) badRefs.count++;
      });
    } catch (err) {
      if (!(err instanceof TidemarkError)) throw err;
      // The map is only partly applied: this state and every later one cannot be rebuilt.
      const broken = problem ?? problemOf(report, reader.name, err.message);
      brokenChainFrom ??= broken;
      broken.states.push(id);
      continue;
    }
    report.statesChecked++;
    const culprits: VerifyProblem[] = [];
    if (brokenChainFrom) culprits.push(brokenChainFrom);
    if (badRefs.count > 0) culprits.push(...problemsFor(map, good, damagedBlocks, readers, report));
    if (options.deep) {
      const hash = map.stateHash();
      const row = recorded.get(id);
      if (hash !== reader.meta.stateHash || (row && row.stateHash !== hash)) {
        culprits.push(
          problemOf(
            report,
            reader.name,
            `state ${id}: recomputed state hash differs from the recorded one`,
          ),
        );
      }
    }
    for (const c of new Set(culprits)) if (!c.states.includes(id)) c.states.push(id);
  }
  for (const r of readers)
    if (r.problem && !report.problems.includes(r.problem)) report.problems.push(r.problem);
  report.problems.sort((a, b) => a.file.localeCompare(b.file));
  report.ok = report.problems.length === 0;
  return report;
}

function intact(hash: Buffer, good: Set<string>, map: StateMap, index: number): boolean {
  return map.isZeroHash(hash, index) || good.has(hash.toString('latin1'));
}

/** Problems (one per update object) holding the damaged blocks that this map references. */
function problemsFor(
  map: StateMap,
  good: Set<string>,
  damaged: Map<string, string>,
  readers: Array<{ reader: UpdateReader | null; problem: VerifyProblem | null }>,
  report: VerifyReport,
): VerifyProblem[] {
  const found = new Set<VerifyProblem>();
  for (let i = 0; i < map.blockCount; i++) {
    const hash = map.hashAt(i);
    if (intact(hash, good, map, i)) continue;
    const file = damaged.get(hash.toString('latin1'));
    const owner = file
      ? readers.find((r) => r.reader?.name === file || r.problem?.file === file)
      : undefined;
    found.add(
      owner?.problem ??
        problemOf(report, file ?? '(missing)', 'a block referenced by a state is missing'),
    );
  }
  return [...found];
}

function problemOf(report: VerifyReport, file: string, message: string): VerifyProblem {
  let p = report.problems.find((q) => q.file === file && q.message === message);
  if (!p) {
    p = { file, message, states: [] };
    report.problems.push(p);
  }
  return p;
}

/** After a record header is damaged, nothing later in that update can be trusted. */
function markRestOfUpdateDamaged(
  archive: Archive,
  name: string,
  good: Set<string>,
  damaged: Map<string, string>,
): void {
  for (const hash of archive.catalog.blobHashesOf(name)) {
    const key = hash.toString('latin1');
    if (!good.has(key)) damaged.set(key, name);
  }
}
