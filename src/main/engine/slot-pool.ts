/**
 * A fixed number of reusable buffers, made on first need: `take` waits while all are in use,
 * so a producer can run at most that many batches ahead of its consumer.
 */
export class SlotPool<T> {
  private readonly free: T[] = [];
  private made = 0;
  private readonly waiting: Array<(slot: T) => void> = [];

  constructor(
    private readonly size: number,
    private readonly make: () => T,
  ) {}

  take(): Promise<T> {
    const slot = this.free.pop();
    if (slot !== undefined) return Promise.resolve(slot);
    if (this.made < this.size) {
      this.made++;
      return Promise.resolve(this.make());
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  give(slot: T): void {
    const next = this.waiting.shift();
    if (next) next(slot);
    else this.free.push(slot);
  }

  /** The slots given back and not taken again, for their owner to keep for later work. */
  drain(): T[] {
    return this.free.splice(0);
  }
}
