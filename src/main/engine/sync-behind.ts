import type { FileHandle } from 'node:fs/promises';

/**
 * Flushes a target to its disk behind the writer, one datasync at a time. Linux starts writing
 * dirty pages back only past 10 % of the memory (vm.dirty_background_ratio), so a restore of a
 * few GB used to decode into the page cache with the disk idle and then wait for all of it in
 * the final fsync; flushing as it goes overlaps the disk's work with the decoding (measured in
 * README, "Benchmark"). The final `sync` is still what makes the result durable.
 */
export class SyncBehind {
  private inFlight: Promise<void> | null = null;
  private failure: unknown = null;

  constructor(private readonly handle: FileHandle) {}

  /** Starts a datasync of what was written so far, unless one is still running. */
  kick(): void {
    if (this.inFlight || this.failure) return;
    this.inFlight = this.handle.datasync().then(
      () => {
        this.inFlight = null;
      },
      (err: unknown) => {
        this.inFlight = null;
        this.failure = err;
      },
    );
  }

  /** Waits for the running datasync, then syncs everything; throws what any of them threw. */
  async sync(): Promise<void> {
    await this.inFlight;
    if (this.failure) throw this.failure;
    await this.handle.sync();
  }

  /** Lets a running datasync end (after a failure, before the handle closes). */
  async settle(): Promise<void> {
    await this.inFlight;
  }
}
