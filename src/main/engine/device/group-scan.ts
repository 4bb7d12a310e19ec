import { BlockWorker } from '../block-worker-client.js';
import type { StateMap } from '../state-map.js';
import type { PrimaryDevice } from './primary-device.js';
import { allocateScan, type ScanMemory } from './scan-work.js';

/**
 * Bytes read per chunk, and chunks in flight. Four 4 MiB slots hold what two 8 MiB read buffers
 * held (the 64 GiB peak-RSS budget has no room for more), and let reads run two chunks ahead of
 * the hashing, which runs one ahead of the engine's thread.
 */
const CHUNK_BYTES = 4 << 20;
const SLOTS = 4;

/** One chunk of a whole-device scan, hashed: valid until the consumer's promise settles. */
export interface ScannedChunk {
  firstBlock: number;
  blocks: number;
  /** The chunk's bytes as read. */
  input: Buffer;
  /** GROUP_* of each scan group of the chunk (group 0 = the chunk's first). */
  status: Uint8Array;
  /** New scan hash of each group. */
  quick: BigUint64Array;
  /** 32 bytes a block; filled for blocks of GROUP_HASHED groups. */
  hashes: Buffer;
}

interface Slot {
  memory: ScanMemory;
  meta: Int32Array;
  chunk: ScannedChunk;
}

/**
 * Reads the whole device in chunks of whole scan groups and has the block worker test each
 * group's xxh3 against the map's and BLAKE3 the blocks of the groups that differ, while the
 * engine's thread stores the changes of the chunks before: the engine's thread no longer
 * touches the bytes of unchanged blocks, so a scan runs at the speed of the disk (cold) or of
 * the kernel's copy and one xxh3 on another core (warm). Chunks reach `consume` in order.
 */
export async function scanGroups(
  device: PrimaryDevice,
  map: StateMap,
  consume: (chunk: ScannedChunk) => Promise<void>,
): Promise<void> {
  const { blockSize, blockCount } = map;
  const perGroup = map.blocksPerScanGroup;
  const perChunk = Math.max(1, Math.floor(CHUNK_BYTES / (blockSize * perGroup))) * perGroup;
  const groupsPerChunk = perChunk / perGroup;
  const worker = new BlockWorker();
  const free: Slot[] = [];
  const makeSlot = (): Slot => {
    const memory = allocateScan(perChunk * blockSize, perChunk, groupsPerChunk);
    return {
      memory,
      meta: new Int32Array(memory.meta),
      chunk: {
        firstBlock: 0,
        blocks: 0,
        input: Buffer.from(memory.input),
        status: new Uint8Array(memory.status),
        quick: new BigUint64Array(memory.quick),
        hashes: Buffer.from(memory.hashes),
      },
    };
  };

  const prepare = async (slot: Slot, first: number, count: number): Promise<Slot> => {
    const { chunk, meta } = slot;
    const length = Math.min(count * blockSize, device.size - first * blockSize);
    chunk.firstBlock = first;
    chunk.blocks = count;
    await device.read(chunk.input, length, first * blockSize);
    const firstGroup = first / perGroup;
    const groups = Math.ceil(count / perGroup);
    // Each group's previous scan hash, taken now: the consumer only writes the groups of the
    // chunks before this one.
    chunk.quick.set(map.scanHashes.subarray(firstGroup, firstGroup + groups));
    meta[0] = count;
    meta[1] = blockSize;
    meta[2] = map.blockLength(first + count - 1);
    meta[3] = perGroup;
    await worker.run({ op: 'scan', memory: slot.memory });
    return slot;
  };

  const inFlight: Array<Promise<Slot>> = [];
  let next = 0;
  const launch = (): void => {
    while (inFlight.length < SLOTS && next < blockCount) {
      const count = Math.min(perChunk, blockCount - next);
      const slot = free.pop() ?? makeSlot();
      const prepared = prepare(slot, next, count);
      // Awaited in order below; this only keeps Node from calling a later failure unhandled.
      prepared.catch(() => undefined);
      inFlight.push(prepared);
      next += count;
    }
  };
  try {
    launch();
    while (inFlight.length > 0) {
      const slot = await (inFlight[0] as Promise<Slot>);
      await consume(slot.chunk);
      inFlight.shift();
      free.push(slot);
      launch();
    }
  } finally {
    // Nothing may still read into the slots or hash them when the device closes.
    await Promise.allSettled(inFlight);
    await worker.close();
  }
}
