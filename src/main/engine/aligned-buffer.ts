const WASM_PAGE = 64 * 1024;

// Node has WebAssembly everywhere, but its types live in the DOM lib, which the engine does not load.
const { Memory } = (
  globalThis as unknown as {
    WebAssembly: { Memory: new (size: { initial: number }) => { buffer: ArrayBuffer } };
  }
).WebAssembly;

/**
 * A zero-filled buffer whose memory starts on a page boundary. Node's large buffers start 16
 * bytes into a page, and the kernel copies into such a buffer 3–4× slower than into an aligned
 * one on some CPUs (measured here on AMD EPYC: 2 GiB from the page cache in 1.0 s instead of
 * 0.25 s, dd's speed). WebAssembly memory is mmap'ed, hence page-aligned. For bulk read buffers
 * that live for a whole operation, not for small or per-block allocations.
 */
export function alignedBuffer(bytes: number): Buffer {
  const memory = new Memory({ initial: Math.max(1, Math.ceil(bytes / WASM_PAGE)) });
  return Buffer.from(memory.buffer, 0, bytes);
}

const { Memory: SharedMemory } = (
  globalThis as unknown as {
    WebAssembly: {
      Memory: new (size: { initial: number; maximum: number; shared: true }) => {
        buffer: SharedArrayBuffer;
      };
    };
  }
).WebAssembly;

/**
 * Page-aligned shared memory for bulk buffers handed to the block worker: a plain
 * SharedArrayBuffer starts 16 bytes into a page like Node's buffers, and reading 1 GiB from the
 * page cache into one cost 3× the kernel time of reading it into this (measured here: 0.6 s
 * against 0.19 s). Its length is rounded up to whole 64 KiB pages.
 */
export function alignedSharedMemory(bytes: number): SharedArrayBuffer {
  const pages = Math.max(1, Math.ceil(bytes / WASM_PAGE));
  return new SharedMemory({ initial: pages, maximum: pages, shared: true }).buffer;
}
