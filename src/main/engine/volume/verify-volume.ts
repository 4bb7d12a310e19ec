import { TidemarkError } from '../../../shared/errors.js';
import type { VerifyProblem, VerifyReport } from '../../../shared/states.js';
import type { Archive } from '../archive.js';
import { BlockCodec } from '../block-codec.js';
import { HASH_BYTES, hashBlock } from '../block-hash.js';
import { walkRecords } from '../format/record-walker.js';
import { RECORD_BLOCK } from '../format/update-format.js';
import { UpdateReader } from '../format/update-reader.js';
import type { VerifyOptions } from '../verify.js';
import { stateIdOf } from '../update-names.js';
import { forEachChange } from './tree-loader.js';
import { VolumeTree } from './volume-tree.js';
import type { VolumeEntry } from './volume-entry.js';

/**
 * `verify` for a volume archive: every stored block decompressed and hashed against its address,
 * every entry frame against its checksum; then the states are replayed in order and each one is
 * named by the damaged objects holding blocks its files use (or by a damaged update it is built
 * on). `deep` also recomputes every state hash from the replayed entries.
 */
export async function verifyVolumeArchive(
  archive: Archive,
  options: VerifyOptions = {},
): Promise<VerifyReport> {
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
  const codec = new BlockCodec(archive.manifest.blockSize);
  const block = Buffer.allocUnsafe(archive.manifest.blockSize);
  const good = new Set<string>();
  const damaged = new Map<string, VerifyProblem>();
  const readers: Array<{ id: number; reader: UpdateReader | null; problem: VerifyProblem | null }> =
    [];
  const problemOf = (file: string, message: string): VerifyProblem => {
    let p = report.problems.find((q) => q.file === file);
    if (!p) report.problems.push((p = { file, message, states: [] }));
    return p;
  };
  for (const name of names) {
    let reader: UpdateReader | null = null;
    let problem: VerifyProblem | null = null;
    try {
      reader = await UpdateReader.open(archive.store, name);
      const [start, end] = reader.recordsRange;
      await walkRecords(archive.store, name, start, end, (header, offset, stored) => {
        report.bytesChecked += stored.length;
        if (header.kind !== RECORD_BLOCK) return;
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
        problem ??= problemOf(name, `damaged block at byte ${offset}`);
        damaged.set(key, problem);
      });
    } catch (err) {
      if (!(err instanceof TidemarkError) || err.code === 'archive.newer-format') throw err;
      problem ??= problemOf(name, err.message);
      for (const h of archive.catalog.blobHashesOf(name)) {
        const key = h.toString('latin1');
        if (!good.has(key)) damaged.set(key, problem);
      }
    }
    report.updatesChecked++;
    readers.push({ id: stateIdOf(name) as number, reader, problem });
    options.onProgress?.(report.updatesChecked, names.length);
  }

  const tree = new VolumeTree();
  const broken = new Map<string, VerifyProblem>();
  let brokenChain: VerifyProblem | null = null;
  const check = (e: VolumeEntry): void => {
    broken.delete(e.path);
    if (!e.blocks) return;
    for (let at = 0; at < e.blocks.length; at += HASH_BYTES) {
      const key = e.blocks.toString('latin1', at, at + HASH_BYTES);
      if (good.has(key)) continue;
      broken.set(
        e.path,
        damaged.get(key) ?? problemOf('(missing)', 'a block used by a state is missing'),
      );
      return;
    }
  };
  for (const { id, reader, problem } of readers) {
    if (!reader) {
      brokenChain ??= problem;
      problem?.states.push(id);
      continue;
    }
    try {
      await forEachChange(reader, (c) => {
        if (c.op === 'delete') for (const e of tree.delete(c.path)) broken.delete(e.path);
        else {
          const old = tree.get(c.entry.path);
          if (old?.type === 'dir' && c.entry.type !== 'dir')
            for (const e of tree.delete(c.entry.path)) broken.delete(e.path);
          tree.set(c.entry);
          check(c.entry);
        }
      });
    } catch (err) {
      if (!(err instanceof TidemarkError)) throw err;
      const p = problem ?? problemOf(reader.name, err.message);
      brokenChain ??= p;
      p.states.push(id);
      continue;
    }
    report.statesChecked++;
    const culprits = new Set<VerifyProblem>(broken.values());
    if (brokenChain) culprits.add(brokenChain);
    if (options.deep && tree.stateHash() !== reader.meta.stateHash)
      culprits.add(
        problemOf(reader.name, `state ${id}: recomputed state hash differs from the recorded one`),
      );
    for (const c of culprits) if (!c.states.includes(id)) c.states.push(id);
  }
  report.problems.sort((a, b) => a.file.localeCompare(b.file));
  report.ok = report.problems.length === 0;
  return report;
}
