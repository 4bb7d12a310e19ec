import type { BlobLocation, Catalog } from '../catalog.js';
import { UpdateWriter } from '../format/update-writer.js';
import type { ObjectStore } from '../storage/object-store.js';

export type NewBlob = { hash: Buffer } & Omit<BlobLocation, 'update'>;

const ARENA_BYTES = 32 << 20;
const BATCH_BLOCKS = 2048;
/**
 * The arena of the last sink released, for the next point: a fresh one costs a page fault per
 * 4 KiB it is filled with, every point.
 */
let spareArena: Buffer | null = null;

/**
 * Where the content blocks of captured files go. Blocks are copied into one arena and handled in
 * batches: one catalog query tells which of a batch the archive already holds (content
 * addressing: renames and copies store nothing), and only the others are written to the update.
 * The update object is created on the first block or entry frame, so a point that stores
 * nothing new still writes only its entries.
 */
export class BlockSink {
  private arena: Buffer = takeArena();
  private used = 0;
  private readonly pending: Array<{ hash: Buffer; start: number; length: number }> = [];
  private readonly storedHere = new Set<string>();
  readonly blobs: NewBlob[] = [];
  writer: UpdateWriter | null = null;

  constructor(
    private readonly store: ObjectStore,
    private readonly catalog: Catalog,
    private readonly updateName: string,
    private readonly blockSize: number,
  ) {}

  async ensureWriter(): Promise<UpdateWriter> {
    return (this.writer ??= await UpdateWriter.create(this.store, this.updateName, this.blockSize));
  }

  /**
   * The hashes of a run of blocks (a chunk of a big file) that the archive does not hold yet, in
   * one catalog query: the others need not even be copied into the arena.
   */
  unknownOf(hashes: Buffer[]): Set<Buffer> {
    const fresh = hashes.filter((h) => !this.storedHere.has(h.toString('latin1')));
    const known = this.catalog.findBlobs(fresh);
    return new Set(fresh.filter((h) => !known.has(h.toString('hex'))));
  }

  /** Queues one block (copied: `data` may be reused once this resolves). */
  async add(hash: Buffer, data: Buffer): Promise<void> {
    if (this.used + data.length > ARENA_BYTES || this.pending.length >= BATCH_BLOCKS)
      await this.flush();
    data.copy(this.arena, this.used);
    this.pending.push({ hash, start: this.used, length: data.length });
    this.used += data.length;
  }

  async flush(): Promise<void> {
    if (this.pending.length === 0) return;
    const fresh = this.pending.filter((p) => !this.storedHere.has(p.hash.toString('latin1')));
    const known = this.catalog.findBlobs(fresh.map((p) => p.hash));
    for (const p of fresh) {
      const key = p.hash.toString('latin1');
      if (known.has(p.hash.toString('hex')) || this.storedHere.has(key)) continue;
      const writer = await this.ensureWriter();
      const stored = await writer.addBlock(
        p.hash,
        this.arena.subarray(p.start, p.start + p.length),
      );
      this.storedHere.add(key);
      this.blobs.push({ hash: p.hash, ...stored });
    }
    this.pending.length = 0;
    this.used = 0;
  }

  /**
   * Stores what is queued and starts making the update's bytes so far durable ahead of its
   * commit (UpdateWriter.writeAhead).
   */
  async writeAhead(): Promise<{ synced: Promise<void> }> {
    await this.flush();
    return (await this.writer?.writeAhead()) ?? { synced: Promise.resolve() };
  }

  async abort(): Promise<void> {
    await this.writer?.abort();
    this.writer = null;
  }

  /** The sink is done with (committed or aborted): its arena serves the next one. */
  release(): void {
    if (this.arena.length === ARENA_BYTES) spareArena = this.arena;
    this.arena = Buffer.alloc(0);
  }
}

function takeArena(): Buffer {
  const arena = spareArena ?? Buffer.allocUnsafe(ARENA_BYTES);
  spareArena = null;
  return arena;
}
