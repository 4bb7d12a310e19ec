// Big shared buffers (compression slots, sealing slots, upload parts) kept for a short while
// after the operation that made them ends, for the next one to take again. Fresh memory is not
// free: the kernel zeroes every page on its first touch, and in a virtual machine each of those
// faults may also exit to the hypervisor (measured here: 256 MiB touched for the first time in
// 0.98 s, 65,000 faults; touched again in 0.08 s). An interval uses ~80 MiB of such buffers;
// intervals, fan-out copies and cache shipping that follow one another reuse them instead.
import { alignedSharedMemory } from './aligned-buffer.js';

/** Kept buffers are dropped this long after the last one came back: an idle app stays small. */
const KEEP_MS = 30_000;
/** At most this much is kept (several jobs' intervals at once do not all stay). */
const KEEP_BYTES = 160 << 20;

const kept = new Map<number, SharedArrayBuffer[]>();
let keptBytes = 0;
let dropTimer: NodeJS.Timeout | null = null;

/**
 * Page-aligned shared memory of at least `bytes` (rounded up to 64 KiB pages): a kept buffer of
 * that size if there is one, whose contents are what its last user left, else a new zeroed one.
 */
export function takeSharedMemory(bytes: number): SharedArrayBuffer {
  const reused = kept.get(roundUp(bytes))?.pop();
  if (!reused) return alignedSharedMemory(bytes);
  keptBytes -= reused.byteLength;
  return reused;
}

/**
 * Gives back buffers that no thread uses any more (the caller must know: a block worker still
 * reading one would see it overwritten by its next user).
 */
export function keepSharedMemory(...buffers: SharedArrayBuffer[]): void {
  for (const buffer of buffers) {
    if (keptBytes + buffer.byteLength > KEEP_BYTES) continue;
    const list = kept.get(buffer.byteLength) ?? [];
    list.push(buffer);
    kept.set(buffer.byteLength, list);
    keptBytes += buffer.byteLength;
  }
  if (dropTimer) clearTimeout(dropTimer);
  dropTimer = setTimeout(dropKeptMemory, KEEP_MS);
  dropTimer.unref();
}

/** Lets go of every kept buffer (the garbage collector frees them). */
export function dropKeptMemory(): void {
  kept.clear();
  keptBytes = 0;
  if (dropTimer) clearTimeout(dropTimer);
  dropTimer = null;
}

/** Bytes kept now, for tests. */
export function keptMemoryBytes(): number {
  return keptBytes;
}

function roundUp(bytes: number): number {
  const page = 64 * 1024;
  return Math.max(1, Math.ceil(bytes / page)) * page;
}
